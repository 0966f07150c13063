import { Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';

/**
 * Emits action events. Listener errors are contained here: logged, never thrown into the flow,
 * whether the listener is synchronous or returns a rejected promise.
 */
@Injectable()
export class DiscourseConnectActionsService {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(@Optional() private readonly emitter?: EventEmitter2) {}

  emit(event: string, payload: object): void {
    if (!this.emitter) return;
    try {
      const results = this.emitter.emitAsync(event, payload);
      results.catch((error) => this.logListenerError(event, error));
    } catch (error) {
      this.logListenerError(event, error);
    }
  }

  private logListenerError(event: string, error: unknown): void {
    this.logger.error(
      `a listener of "${event}" failed: ${(error as Error)?.message ?? String(error)}`,
    );
  }
}
