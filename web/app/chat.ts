// One chat: the history, the composer, the streamed reply (reply.ts), regenerate / edit /
// delete, alternate greetings, the sessions of this character, and the speed and context use of
// the last reply.

import type { Character, ChatEvent, DoneEvent, HistoryMessage, MemoryHit, MemoryRecord, Session, TurnStream } from 'confidant';
import type { App } from './app.js';
import { h, replace } from './dom.js';
import { plural, when } from './format.js';
import { shortSummary } from './device.js';
import { downloadSize } from './model.js';
import { PendingReply } from './reply.js';

export class ChatView {
  /** The memories the engine used for the last reply (for the memory panel). */
  lastMemories: MemoryHit[] | null = null;
  private history: HistoryMessage[] = [];
  /** This character's memories by id, read when a reply's citations are first opened (reset after each reply). */
  private memoriesById: Promise<Map<string, MemoryRecord>> | null = null;
  private stream: TurnStream | null = null;
  private greetingIndex = 0;
  private readonly messages = h('ol', { class: 'messages', 'aria-label': 'Messages', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  /** Where the model runs and how fast, then the speed and context use of the last reply. */
  private readonly stats = h('p', { class: 'stats' });
  private readonly input = h('textarea', { rows: 2, placeholder: 'Write a message…', 'aria-label': 'Message', autocomplete: 'off' });
  private readonly sendButton = h('button', { type: 'submit', class: 'primary send' }, 'Send');
  private readonly sessionSelect = h('select', { 'aria-label': 'Chat', class: 'session-select' });
  private readonly thoughtsToggle: HTMLButtonElement;
  private detached = false;
  private readonly unsubscribe: () => void;
  private rendered: Promise<void> | null = null;

  constructor(
    private readonly app: App,
    private readonly view: HTMLElement,
    private readonly character: Character,
    private session: Session,
    menu: HTMLElement,
    avatar: HTMLElement,
  ) {
    this.thoughtsToggle = h('button', { type: 'button', class: 'toggle', 'aria-pressed': String(app.settings.showThoughts), onclick: () => this.toggleThoughts(), title: 'Show or hide inner thoughts' }, 'Thoughts');
    // Only characters written with inner thoughts have any to show.
    this.thoughtsToggle.hidden = !character.innerThoughts?.enabled;
    this.messages.classList.toggle('hide-thoughts', !app.settings.showThoughts);
    // Where the model runs once it is loaded; until then, what the first message will do.
    this.unsubscribe = app.model.subscribe((status) => {
      if (status.state === 'ready') {
        this.stats.textContent = shortSummary(status.info);
        this.stats.title = status.info.backendReason;
      } else if (status.state === 'absent') {
        this.stats.textContent = status.cached ? 'The model is in this browser: it loads with your first message.' : `Your first message downloads the models (${downloadSize(app.settings, app.model.catalogue)}), once.`;
      } else if (status.state === 'failed') {
        this.stats.textContent = `The model could not be loaded: ${status.message}`;
      }
    });
    this.sessionSelect.addEventListener('change', () => void app.openCharacter(character.id, this.sessionSelect.value));
    const form = h('form', { class: 'composer' }, this.input, this.sendButton);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (this.stream) this.stream.abort();
      else void this.send();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (!this.stream) void this.send();
      }
    });
    view.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.stream) this.stream.abort();
    });
    replace(
      view,
      h(
        'header',
        { class: 'chat-head' },
        menu,
        avatar,
        h('div', { class: 'who' }, h('h1', {}, character.name), this.sessionSelect),
        h(
          'div',
          { class: 'head-actions' },
          h('button', { type: 'button', onclick: () => void this.newSession() }, 'New chat'),
          h('button', { type: 'button', title: `${character.name} goes on from the last reply`, onclick: () => void this.continueReply() }, 'Continue'),
          h('button', { type: 'button', title: 'Draft your next message (you can edit it before sending)', onclick: () => void this.impersonate() }, 'Write for me'),
          this.thoughtsToggle,
          h('button', { type: 'button', onclick: () => app.openMemory() }, 'Memory'),
          h('button', { type: 'button', onclick: () => app.editCharacter(character.id) }, 'Edit'),
          h('button', { type: 'button', class: 'danger', onclick: () => void this.deleteSession() }, 'Delete chat'),
        ),
      ),
      this.messages,
      h('div', { class: 'composer-wrap' }, form, this.stats),
    );
  }

  /** Stop any reply in progress when the view goes away. */
  detach(): void {
    this.detached = true;
    this.unsubscribe();
    this.stream?.abort();
  }

  /** Show the stored history (once; a message sent before it arrives waits for it). */
  render(): Promise<void> {
    this.rendered ??= (async () => {
      this.history = await this.session.history();
      this.renderMessages();
      await this.renderSessions();
      this.input.focus();
    })();
    return this.rendered;
  }

  /** The sessions of this character, most recent first, in the header's picker. */
  private async renderSessions(): Promise<void> {
    const sessions = await this.app.engine.sessions.list({ characterId: this.character.id });
    replace(
      this.sessionSelect,
      sessions.map((s, i) => {
        const prefix = `${i === 0 ? 'Latest chat' : 'Chat'} · ${when(s.updatedAt)} · `;
        return h('option', { value: s.id, selected: s.id === this.session.id, 'data-prefix': prefix }, `${prefix}${plural(s.messageCount, 'message', 'messages')}`);
      }),
    );
    this.thoughtsToggle.hidden &&= !this.history.some((m) => m.thought);
  }

  private renderMessages(): void {
    const greetings = 1 + (this.character.alternate_greetings?.length ?? 0);
    const lastAssistant = this.history.length > 1 && this.history[this.history.length - 1].role === 'assistant';
    replace(
      this.messages,
      this.history.map((m, i) => {
        const tools: HTMLElement[] = [];
        const onlyGreeting = m.greeting && this.history.length === 1;
        if (onlyGreeting && greetings > 1) {
          tools.push(
            h('button', { type: 'button', class: 'link', 'aria-label': 'Previous greeting', onclick: () => void this.showGreeting(this.greetingIndex - 1) }, '‹'),
            h('span', { class: 'counter' }, `${this.greetingIndex + 1} / ${greetings}`),
            h('button', { type: 'button', class: 'link', 'aria-label': 'Next greeting', onclick: () => void this.showGreeting(this.greetingIndex + 1) }, '›'),
          );
        }
        const versions = m.swipes?.length ?? 0;
        if (versions > 1) {
          // Regenerated replies keep every version: the one shown is what the chat goes on from.
          const at = m.swipe ?? 0;
          tools.push(
            h('button', { type: 'button', class: 'link', 'aria-label': 'Previous version', disabled: at === 0, onclick: () => void this.showVersion(m, at - 1) }, '‹'),
            h('span', { class: 'counter' }, `${at + 1} / ${versions}`),
            h('button', { type: 'button', class: 'link', 'aria-label': 'Next version', disabled: at === versions - 1, onclick: () => void this.showVersion(m, at + 1) }, '›'),
          );
        }
        if (lastAssistant && i === this.history.length - 1) tools.push(h('button', { type: 'button', class: 'link', onclick: () => void this.regenerate() }, 'Regenerate'));
        tools.push(h('button', { type: 'button', class: 'link', onclick: (e: Event) => this.edit(m, (e.currentTarget as HTMLElement).closest('li')!) }, 'Edit'));
        if (!onlyGreeting) tools.push(h('button', { type: 'button', class: 'link danger', onclick: () => void this.remove(m) }, 'Delete'));
        return this.bubble(m.role, m, tools);
      }),
    );
    this.scroll();
  }

  private bubble(role: 'user' | 'assistant', m: HistoryMessage | null, tools: HTMLElement[]): HTMLLIElement {
    const name = role === 'user' ? this.session.userName : this.character.name;
    const body = h('div', { class: 'body' });
    if (m) {
      if (m.thought) body.append(h('p', { class: 'thought' }, h('span', { class: 'visually-hidden' }, 'Thinks: '), m.thought));
      if (m.action) body.append(h('p', { class: 'action' }, m.action));
      if (m.text || role === 'user') body.append(h('p', { class: 'text' }, m.text));
    }
    // A reply saved while it was written, whose page closed before it ended.
    const unfinished = m?.unfinished ? h('span', { class: 'unfinished', title: 'The page closed while this reply was being written.' }, 'unfinished') : null;
    const cites = role === 'assistant' && m?.usedMemoryIds?.length ? this.citations(m.usedMemoryIds) : null;
    return h('li', { class: `message ${role}`, 'data-id': m?.id || undefined }, h('div', { class: 'meta' }, h('span', { class: 'name' }, name), m ? h('time', {}, when(m.createdAt)) : null, unfinished), body, cites, h('div', { class: 'tools' }, tools));
  }

  /**
   * What the character knew when it wrote a reply: the memories its prompt used, listed (read
   * from storage) when the person opens them.
   */
  private citations(ids: string[]): HTMLDetailsElement {
    const list = h('ol', {});
    const details = h('details', { class: 'cites' }, h('summary', {}, `Remembered ${plural(ids.length, 'memory', 'memories')}`), list);
    details.addEventListener('toggle', () => {
      if (!details.open || list.childElementCount > 0) return;
      const memories = (this.memoriesById ??= this.app.engine.memory.list({ characterId: this.character.id }).then((records) => new Map(records.map((r) => [r.id, r]))));
      memories.then(
        (byId) =>
          replace(
            list,
            ids.map((id) => {
              const record = byId.get(id);
              return record ? h('li', { 'data-memory-id': id }, record.pinned ? h('span', { class: 'pin', title: 'Always kept in mind' }, 'Pinned') : null, record.text) : h('li', { class: 'forgotten' }, 'A memory since forgotten');
            }),
          ),
        (e) => {
          this.memoriesById = null;
          this.app.toast(this.app.describe(e), 'error');
        },
      );
    });
    return details;
  }

  /** The header's message count for what is on screen: the history, and the reply once it has begun. */
  private updateCount(replying: boolean): void {
    const option = this.sessionSelect.selectedOptions[0];
    if (option?.dataset.prefix === undefined) return;
    option.textContent = `${option.dataset.prefix}${plural(this.history.length + (replying ? 1 : 0), 'message', 'messages')}`;
  }

  private scroll(): void {
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  private setBusy(busy: boolean): void {
    this.sendButton.textContent = busy ? 'Stop' : 'Send';
    this.sendButton.classList.toggle('stop', busy);
    this.sendButton.setAttribute('aria-label', busy ? 'Stop the reply' : 'Send');
    for (const b of this.messages.querySelectorAll<HTMLButtonElement>('.tools button')) b.disabled = busy;
    this.view.classList.toggle('busy', busy);
  }

  private async send(): Promise<void> {
    const text = this.input.value.trim();
    if (!text) return;
    // The history on screen first, so its arrival cannot replace the message and its reply.
    await this.render();
    // Shown at once; the stored message replaces it a moment later, and only then is the box
    // emptied (a refused send, a full disk, loses nothing typed).
    const shown: HistoryMessage = { id: '', role: 'user', text, raw: text, createdAt: Date.now(), memoryIds: [] };
    await this.run(() => this.session.send(text, this.app.settings.sampling), shown);
  }

  private async regenerate(): Promise<void> {
    if (!(await this.app.model.ensure())) return;
    // The old reply stays stored (another version of the message) until the new one is complete.
    this.history.pop();
    this.renderMessages();
    await this.run(() => this.session.regenerate(this.app.settings.sampling));
  }

  /** The latest reply goes on: the new text streams below it, then the message shows whole. */
  private async continueReply(): Promise<void> {
    if (this.stream || !(await this.app.model.ensure())) return;
    await this.run(() => this.session.continue(this.app.settings.sampling));
  }

  /** A draft of the person's next message, written into the composer as it streams; nothing is sent. */
  private async impersonate(): Promise<void> {
    if (this.stream || !(await this.app.model.ensure())) return;
    const stream = this.session.impersonate(this.app.settings.sampling);
    this.stream = stream;
    this.setBusy(true);
    this.input.value = '';
    try {
      for await (const event of stream as AsyncIterable<ChatEvent>) {
        if (event.type === 'text') this.input.value += event.text;
        else if (event.type === 'done' && event.draft !== undefined) this.input.value = event.draft;
      }
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    } finally {
      this.stream = null;
      this.setBusy(false);
      this.input.focus();
    }
  }

  /** Show version `index` of a regenerated reply. */
  private async showVersion(m: HistoryMessage, index: number): Promise<void> {
    try {
      await this.session.chooseSwipe(m.id, index);
      this.history = await this.session.history();
      this.renderMessages();
      this.messages.querySelector<HTMLButtonElement>(`[aria-label="${index > (m.swipe ?? 0) ? 'Next' : 'Previous'} version"]`)?.focus();
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    }
  }

  /**
   * Stream one reply into a new bubble, then re-read the history (the stored truth). `shown`: the
   * user's message, put on screen before the engine has stored it.
   */
  private async run(start: () => TurnStream, shown: HistoryMessage | null = null): Promise<void> {
    // The message and a typing bubble at once, before the engine has answered anything.
    let userBubble: HTMLLIElement | null = null;
    if (shown) {
      this.history.push(shown);
      userBubble = this.bubble('user', shown, []);
      userBubble.classList.add('pending');
      this.messages.append(userBubble);
    }
    const reply = new PendingReply(this.bubble('assistant', null, []), this.character.name, null);
    this.messages.append(reply.element);
    this.setBusy(true);
    this.updateCount(false);
    this.scroll();
    // Nothing was sent: the bubbles go (the text is still in the composer).
    const giveUp = (error: unknown) => {
      if (error) this.app.toast(this.app.describe(error), 'error');
      userBubble?.remove();
      reply.element.remove();
      if (shown) this.history.splice(this.history.indexOf(shown), 1);
      this.setBusy(false);
      this.updateCount(false);
    };
    // The first message loads the models (asking first when they must be downloaded); the bubble
    // says how far that is, and the message waits on screen.
    if (!this.app.model.ready) {
      this.sendButton.disabled = true;
      const stop = this.app.model.subscribe((status) => status.state === 'loading' && reply.note(status.text));
      const ready = await this.app.model.ensure();
      stop();
      this.sendButton.disabled = false;
      if (this.detached) return;
      if (!ready) return giveUp(this.app.model.status.state === 'failed' ? new Error(`The model could not be loaded: ${this.app.model.status.message}`) : null);
    }
    reply.note('');
    reply.estimate(this.app.engine.info().speed?.prefillTokS ?? null);
    let stream: TurnStream;
    try {
      stream = start();
    } catch (e) {
      return giveUp(e);
    }
    this.stream = stream;
    let done: DoneEvent | null = null;
    try {
      for await (const event of stream as AsyncIterable<ChatEvent>) {
        if (this.detached) break;
        if (event.type === 'user') {
          if (this.input.value.trim() === event.message.text.trim()) this.input.value = '';
          this.history[this.history.indexOf(shown!)] = event.message;
          const bubble = this.bubble('user', event.message, []);
          userBubble?.replaceWith(bubble);
          userBubble = bubble;
        } else if (event.type === 'memory') {
          this.lastMemories = event.records;
        } else if (event.type === 'progress') {
          reply.progress(event.done, event.total);
        } else if (event.type === 'done') {
          done = event;
        } else if (event.type === 'thought' || event.type === 'action' || event.type === 'text') {
          const first = !reply.started;
          reply.piece(event.type, event.text, event.opens);
          if (first) this.updateCount(true);
        }
        this.scroll();
      }
    } catch (e) {
      if (!this.detached) this.app.toast(this.app.describe(e), 'error');
    } finally {
      this.stream = null;
    }
    if (this.detached) return;
    this.setBusy(false);
    if (done) this.showStats(done);
    if (done && !done.message && done.finishReason !== 'abort') this.app.toast(`${this.character.name} had nothing to say that time. Send again, or raise the longest reply in the settings.`);
    // The reply may have written memories, or used ones read before.
    this.memoriesById = null;
    try {
      this.history = await this.session.history();
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    }
    this.renderMessages();
    this.input.focus();
    void this.renderSessions().catch(() => {});
  }

  private showStats(done: DoneEvent): void {
    const context = this.app.engine.info().contextLength;
    const used = done.usage.prompt_tokens + done.usage.completion_tokens;
    const parts = [`${done.timings.decode_tok_s.toFixed(1)} tok/s`, `context ${used} / ${context}`, `${done.usage.cached_tokens} cached`];
    if (done.finishReason === 'abort') parts.push('stopped');
    if (done.finishReason === 'length') parts.push('length limit');
    this.stats.textContent = parts.join(' · ');
    this.stats.title = `Prompt ${done.usage.prompt_tokens} tokens (${done.usage.cached_tokens} from the cache), reply ${done.usage.completion_tokens} tokens; prefill ${done.timings.prefill_tok_s.toFixed(0)} tok/s`;
  }

  private async showGreeting(index: number): Promise<void> {
    const count = 1 + (this.character.alternate_greetings?.length ?? 0);
    const next = (index + count) % count;
    try {
      const message = await this.session.setGreeting(next);
      this.greetingIndex = next;
      this.history = [message];
      this.renderMessages();
      this.messages.querySelector<HTMLButtonElement>('[aria-label="Next greeting"]')?.focus();
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    }
  }

  private edit(m: HistoryMessage, li: HTMLElement): void {
    const area = h('textarea', { rows: 4, value: m.role === 'assistant' ? m.raw : m.text, 'aria-label': 'Edit message' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h('form', { class: 'edit-form' }, area, h('div', { class: 'row' }, save, h('button', { type: 'button', onclick: () => this.renderMessages() }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!area.value.trim()) return;
      save.disabled = true;
      // An edited message is remembered anew, which needs the memory model.
      if (!(await this.app.model.ensure())) {
        save.disabled = false;
        return;
      }
      try {
        await this.session.editMessage(m.id, area.value);
        this.history = await this.session.history();
        this.renderMessages();
      } catch (err) {
        this.app.toast(this.app.describe(err), 'error');
        save.disabled = false;
      }
    });
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        this.renderMessages();
      }
    });
    replace(li.querySelector('.body')!, form);
    li.querySelector('.tools')?.replaceChildren();
    area.focus();
  }

  private async remove(m: HistoryMessage): Promise<void> {
    try {
      await this.session.deleteMessage(m.id);
      this.history = await this.session.history();
      this.renderMessages();
      this.app.toast('Message deleted, with what it added to memory.');
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    }
  }

  private toggleThoughts(): void {
    this.app.settings.showThoughts = !this.app.settings.showThoughts;
    this.app.saveSettings();
    this.thoughtsToggle.setAttribute('aria-pressed', String(this.app.settings.showThoughts));
    this.messages.classList.toggle('hide-thoughts', !this.app.settings.showThoughts);
  }

  private async newSession(): Promise<void> {
    try {
      const session = await this.app.engine.sessions.create({ characterId: this.character.id, userName: this.app.settings.userName });
      await this.app.openCharacter(this.character.id, session.id);
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    }
  }

  private async deleteSession(): Promise<void> {
    if (!confirm('Delete this chat and the memories written from it?')) return;
    try {
      await this.app.engine.sessions.remove(this.session.id);
      await this.app.openCharacter(this.character.id);
    } catch (e) {
      this.app.toast(this.app.describe(e), 'error');
    }
  }
}
