import type { DiscourseConnectSyncQueue } from 'nestjs-discourse-connect';

/** Waits until no job is pending or running; reports the remaining count as it goes. */
export async function waitForQueue(
  queue: DiscourseConnectSyncQueue,
  onProgress: (remaining: number) => void = () => undefined,
  intervalMs = 250,
): Promise<{ failed: number }> {
  for (;;) {
    const counts = await queue.counts();
    const remaining = counts.pending + counts.running;
    onProgress(remaining);
    if (remaining === 0) return { failed: counts.failed };
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
