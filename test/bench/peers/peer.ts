// What each peer benchmark sets up: the farm's side, the peer tool's side, and the table's facts.

import type { Contender, PeerRow } from '../../support/bench-pair.ts';

export interface PeerSetup extends Pick<PeerRow, 'bench' | 'farmSends' | 'peerSends' | 'peerStartup' | 'note'> {
  farm: Contender;
  peer: Contender;
  /** Releases what setup made (temp files, clients); uploads are removed turn by turn. */
  close(): Promise<void>;
}
