import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { SyncQueue, type SyncQueueCounts } from '../sync/sync-queue.service';

/** `GET /health`: 200 when the database answers, 503 otherwise; with the sync queue's counts. */
@Controller('health')
export class DiscourseConnectHealthController {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly queue: SyncQueue,
  ) {}

  @Get()
  async check(@Res() res: Response): Promise<void> {
    let database: 'up' | 'down' = 'down';
    let queue: SyncQueueCounts | undefined;
    try {
      await this.dataSource.query('SELECT 1');
      database = 'up';
      queue = await this.queue.counts();
    } catch {
      /* reported below */
    }
    const ok = database === 'up';
    res
      .status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE)
      .setHeader('Cache-Control', 'no-store')
      .json({ status: ok ? 'ok' : 'error', checks: { database }, queue });
  }
}
