/**
 * A map with a size bound that forgets its least recently used entry first (an LRU). `get`
 * refreshes an entry; `set` of a new key past the bound drops the oldest one. No timers.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly maxSize: number) {
    if (!(maxSize >= 1)) throw new RangeError('a bounded cache holds at least one entry');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, refreshed as the most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    // Re-inserted: a Map keeps insertion order, which is the eviction order.
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  /** The value without refreshing it. */
  peek(key: K): V | undefined {
    return this.entries.get(key);
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.maxSize) {
      const oldest = this.entries.keys().next().value as K;
      this.entries.delete(oldest);
    }
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
