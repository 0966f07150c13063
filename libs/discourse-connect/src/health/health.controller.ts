import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Response } from 'express';
import { DataSource } from 'typeorm';

/** `GET /health`: 200 when the database answers, 503 otherwise. */
@Controller('health')
export class DiscourseConnectHealthController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get()
  async check(@Res() res: Response): Promise<void> {
    let database: 'up' | 'down' = 'down';
    try {
      await this.dataSource.query('SELECT 1');
      database = 'up';
    } catch {
      /* reported below */
    }
    const ok = database === 'up';
    res
      .status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE)
      .setHeader('Cache-Control', 'no-store')
      .json({ status: ok ? 'ok' : 'error', checks: { database } });
  }
}
