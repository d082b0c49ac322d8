/** Items in arrival order; `take()` waits for the next one not yet taken. */
export interface Queue<T> {
  push(item: T): void
  take(): Promise<T>
  /** How many items arrived in all. */
  readonly size: number
}

export function queue<T>(): Queue<T> {
  const items: T[] = []
  const waiting: Array<(item: T) => void> = []
  let arrived = 0
  return {
    push(item) {
      arrived++
      const waiter = waiting.shift()
      if (waiter) waiter(item)
      else items.push(item)
    },
    take() {
      const item = items.shift()
      return item === undefined ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve(item)
    },
    get size() {
      return arrived
    },
  }
}
