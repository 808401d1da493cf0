// Building DOM nodes from code. Every string becomes a text node or an attribute value, never
// markup: card and chat text come from strangers, so nothing here ever parses HTML.

export type Child = Node | string | number | null | undefined | false | Child[];
export type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      (el as unknown as Record<string, unknown>)[key] = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A labelled form field: label text, the control, and an optional hint below it. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintEl = hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** A modal dialog: Escape and the close button close it; focus returns where it was. */
export function openDialog(title: string, body: Child[], { wide = false, onClose }: { wide?: boolean; onClose?: () => void } = {}): HTMLDialogElement {
  const previous = document.activeElement as HTMLElement | null;
  const titleId = `d-${Math.random().toString(36).slice(2, 9)}`;
  const dialog = h(
    'dialog',
    { class: wide ? 'panel wide' : 'panel', 'aria-labelledby': titleId },
    h('header', { class: 'panel-head' }, h('h2', { id: titleId }, title), h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: () => dialog.close() }, '✕')),
    h('div', { class: 'panel-body' }, body),
  );
  dialog.addEventListener('close', () => {
    dialog.remove();
    onClose?.();
    previous?.focus?.();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** Save a Blob as a file download (made here, never fetched). */
export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
