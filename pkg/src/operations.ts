// Every operation the engine worker serves for the page's API, in one table: its arguments, its
// result, and whether it changes stored data (after those the other tabs are told, and the index
// upkeep is scheduled). The page calls them by name (index.ts), the host dispatches them to the
// wasm engine (host.ts); both are typed from here.

import type {
  Character,
  CharacterPatch,
  EvaluateOptions,
  Evaluation,
  HistoryMessage,
  ImportCounts,
  MemoryHit,
  MemoryListFilter,
  MemoryPatch,
  MemoryRecord,
  MemorySearch,
  MemoryStats,
  NewMemory,
  PromptDebug,
  SessionInfo,
  UnreadableRecord,
  UserFact,
} from './types.js';

/** An operation: its arguments, what it resolves to, whether it changes stored data. */
interface Op<Args extends unknown[], Result, Writes extends boolean> {
  args: Args;
  result: Result;
  writes: Writes;
}

/** Reply options as they cross to the worker (no AbortSignal). */
type HostReplyOptions = Record<string, unknown>;

export interface MemoryOps {
  add: Op<[memory: NewMemory], MemoryRecord, true>;
  /** Moves `lastAccessed` of what it finds. */
  search: Op<[query: MemorySearch], MemoryHit[], true>;
  list: Op<[filter: MemoryListFilter], MemoryRecord[], false>;
  update: Op<[id: string, patch: MemoryPatch], MemoryRecord, true>;
  forget: Op<[id: string], boolean, true>;
  embed: Op<[texts: string[]], Float32Array[], false>;
  stats: Op<[query: { characterId?: string }], Omit<MemoryStats, 'storage'>, false>;
  /** The index upkeep itself (rebuilds, saved indexes): nothing another tab needs to reload. */
  maintain: Op<[], number, false>;
  /** Load the embedding model now (it otherwise loads on first use). */
  load: Op<[], null, false>;
}

export interface ChatOps {
  importCharacter: Op<[bytes: Uint8Array], Character, true>;
  listCharacters: Op<[], Character[], false>;
  getCharacter: Op<[id: string], Character, false>;
  updateCharacter: Op<[id: string, patch: CharacterPatch], Character, true>;
  removeCharacter: Op<[id: string], undefined, true>;
  exportCharacter: Op<[id: string, format: 'png' | 'json', spec: 'v2' | 'v3'], Uint8Array, false>;
  createSession: Op<[characterId: string, userName: string, greeting: number], SessionInfo, true>;
  listSessions: Op<[characterId: string | null], SessionInfo[], false>;
  getSession: Op<[id: string], SessionInfo, false>;
  removeSession: Op<[id: string], undefined, true>;
  history: Op<[sessionId: string], HistoryMessage[], false>;
  /** Streams events; resolves to null once the reply is stored. */
  send: Op<[sessionId: string, text: string, options: HostReplyOptions], null, true>;
  regenerate: Op<[sessionId: string, options: HostReplyOptions], null, true>;
  /** Streams events; the latest reply grows. */
  continueReply: Op<[sessionId: string, options: HostReplyOptions], null, true>;
  /** Streams events; the draft of the user's turn is in `done`, nothing is stored. */
  impersonate: Op<[sessionId: string, options: HostReplyOptions], null, false>;
  editMessage: Op<[sessionId: string, messageId: string, text: string], HistoryMessage, true>;
  deleteMessage: Op<[sessionId: string, messageId: string], undefined, true>;
  setGreeting: Op<[sessionId: string, index: number], HistoryMessage, true>;
  chooseSwipe: Op<[sessionId: string, messageId: string, index: number], HistoryMessage, true>;
  debugPrompt: Op<[sessionId: string], PromptDebug | null, false>;
  /** Runs in memory only: the stored data is not touched. */
  evaluate: Op<[caseSet: string, options: EvaluateOptions], Evaluation, false>;
  exportAll: Op<[], string, false>;
  importAll: Op<[text: string, replaceNewer: boolean], ImportCounts, true>;
  unreadable: Op<[], UnreadableRecord[], false>;
  userProfile: Op<[], UserFact[], false>;
  addUserFact: Op<[subject: string, value: string], UserFact, true>;
  updateUserFact: Op<[id: string, subject: string | null, value: string | null], UserFact, true>;
  removeUserFact: Op<[id: string], undefined, true>;
  wipe: Op<[], undefined, true>;
  /** Rolling summaries, one token at a time while nothing else waits (the host's own). */
  background: Op<[], null, true>;
}

export type MemoryOp = keyof MemoryOps;
export type ChatOp = keyof ChatOps;

/** `writes` of each memory operation, at run time. */
export const MEMORY_WRITES: { readonly [K in MemoryOp]: MemoryOps[K]['writes'] } = {
  add: true,
  search: true,
  list: false,
  update: true,
  forget: true,
  embed: false,
  stats: false,
  maintain: false,
  load: false,
};

/** `writes` of each chat operation, at run time. */
export const CHAT_WRITES: { readonly [K in ChatOp]: ChatOps[K]['writes'] } = {
  importCharacter: true,
  listCharacters: false,
  getCharacter: false,
  updateCharacter: true,
  removeCharacter: true,
  exportCharacter: false,
  createSession: true,
  listSessions: false,
  getSession: false,
  removeSession: true,
  history: false,
  send: true,
  regenerate: true,
  continueReply: true,
  impersonate: false,
  editMessage: true,
  deleteMessage: true,
  setGreeting: true,
  chooseSwipe: true,
  debugPrompt: false,
  evaluate: false,
  exportAll: false,
  importAll: true,
  unreadable: false,
  userProfile: false,
  addUserFact: true,
  updateUserFact: true,
  removeUserFact: true,
  wipe: true,
  background: true,
};
