// What every screen of the app shares: the engine, the model's state, the settings and the
// navigation.

import type { Character, Confidant } from 'confidant';
import type { ModelLoader } from './model.js';
import type { Settings } from './settings.js';

export interface App {
  /** Opened without a model: storage works at once; `model` loads the model when needed. */
  engine: Confidant;
  model: ModelLoader;
  settings: Settings;
  saveSettings(): void;
  /** Characters as last listed, newest first. */
  characters: Character[];
  refreshCharacters(): Promise<void>;
  showGallery(): void;
  /** Open a character's chat: the given session, else the latest one, else a new one. */
  openCharacter(id: string, sessionId?: string | null): Promise<void>;
  editCharacter(id: string | null): void;
  openMemory(): void;
  openSettings(): void;
  /** The card's own picture, or a portrait drawn from the card. */
  avatar(character: Character, size: 'small' | 'large'): Promise<HTMLElement>;
  /** An object URL of the character's card image, or null when it has none. */
  avatarUrl(character: Character): Promise<string | null>;
  toast(message: string, kind?: 'error' | 'info'): void;
  /** A person-readable message for a thrown value (with the engine's error code). */
  describe(error: unknown): string;
}
