// What every screen of the app shares: the engine, the settings and the navigation.

import type { Character, Confidant } from 'confidant';
import type { Settings } from './settings.js';

export interface App {
  engine: Confidant;
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
  /** The character's picture, or its initials when the card has none. */
  avatar(character: Character, size: 'small' | 'large'): Promise<HTMLElement>;
  /** An object URL of the character's card image, or null when it has none. */
  avatarUrl(character: Character): Promise<string | null>;
  toast(message: string, kind?: 'error' | 'info'): void;
  /** A person-readable message for a thrown value (with the engine's error code). */
  describe(error: unknown): string;
}
