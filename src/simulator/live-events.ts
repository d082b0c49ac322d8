import { createHash } from 'node:crypto'

/** A viewer as tik.tools describes one in events. */
export interface LiveUser {
  uniqueId: string
  nickname: string
}

/** One WebSocket message: `{"event": "<name>", "data": {...}}`. */
export type LiveEvent =
  | { event: 'roomInfo'; data: { uniqueId: string; roomId: string; title: string; viewerCount: number; isLive: true } }
  | { event: 'chat'; data: { user: LiveUser; comment: string } }
  | { event: 'like'; data: { user: LiveUser; likeCount: number; totalLikeCount: number } }
  | { event: 'gift'; data: { user: LiveUser; giftId: number; giftName: string; repeatCount: number; diamondCount: number } }
  | { event: 'member'; data: { user: LiveUser; action: 'join' } }

// Small fixed lists: the content rotates deterministically, with no external data.
const USERS: readonly LiveUser[] = [
  { uniqueId: 'sim_ada', nickname: 'Ada' },
  { uniqueId: 'sim_grace', nickname: 'Grace' },
  { uniqueId: 'sim_linus', nickname: 'Linus' },
  { uniqueId: 'sim_margaret', nickname: 'Margaret' },
  { uniqueId: 'sim_ken', nickname: 'Ken' },
]
const COMMENTS = ['hello!', 'love this stream', 'where are you from?', 'so cool', 'first time here']
const GIFTS = [
  { giftId: 5655, giftName: 'Rose', diamondCount: 1 },
  { giftId: 5269, giftName: 'TikTok', diamondCount: 1 },
  { giftId: 5487, giftName: 'Finger Heart', diamondCount: 5 },
  { giftId: 5827, giftName: 'Ice Cream Cone', diamondCount: 1 },
]
const KINDS = ['chat', 'like', 'gift', 'member'] as const

/** The simulated LIVE of one creator: `roomInfo` first, then chat, like, gift, member in turn. */
export class LiveStream {
  private count = 0
  private totalLikes = 0

  constructor(readonly uniqueId: string) {}

  /** The first message of every stream. */
  roomInfo(): LiveEvent {
    return {
      event: 'roomInfo',
      data: {
        uniqueId: this.uniqueId,
        roomId: roomIdOf(this.uniqueId),
        title: `${this.uniqueId} is LIVE (simulated)`,
        viewerCount: 100 + (Number(roomIdOf(this.uniqueId).slice(-3)) % 900),
        isLive: true,
      },
    }
  }

  /** The next event of the rotation. */
  next(): LiveEvent {
    const n = this.count++
    const user = USERS[n % USERS.length] as LiveUser
    switch (KINDS[n % KINDS.length]) {
      case 'chat':
        return { event: 'chat', data: { user, comment: COMMENTS[n % COMMENTS.length] as string } }
      case 'like': {
        const likeCount = (n % 5) + 1
        this.totalLikes += likeCount
        return { event: 'like', data: { user, likeCount, totalLikeCount: this.totalLikes } }
      }
      case 'gift': {
        const gift = GIFTS[n % GIFTS.length] as (typeof GIFTS)[number]
        return { event: 'gift', data: { user, ...gift, repeatCount: (n % 3) + 1 } }
      }
      default:
        return { event: 'member', data: { user, action: 'join' } }
    }
  }
}

/** A stable 19-digit room id per creator, shaped like TikTok's. */
function roomIdOf(uniqueId: string): string {
  const digest = createHash('sha256').update(uniqueId).digest()
  return `7${(digest.readBigUInt64BE(0) % 10n ** 18n).toString().padStart(18, '0')}`
}
