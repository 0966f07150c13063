import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
import { isThenable, type MaybePromise } from '../common/maybe-async';
import { FilterFailedError } from './filter-failed.error';
import { DISCOURSE_CONNECT_FILTER, FilterRegistration } from './discourse-connect-filter.decorator';
import type { DiscourseConnectFilterName, DiscourseConnectFilters } from './filters.interface';

type FilterFn = (value: unknown, context: unknown) => unknown;

interface RegisteredFilter {
  priority: number;
  order: number;
  label: string;
  fn: FilterFn;
}

/**
 * Finds `@DiscourseConnectFilter` methods at startup and applies them by priority. A filter that
 * throws fails the request closed: the person sees a page saying the site refused, the operator
 * gets the error in the log.
 */
@Injectable()
export class DiscourseConnectFiltersService implements OnModuleInit {
  private readonly logger = new Logger('DiscourseConnect');
  private readonly filters = new Map<string, RegisteredFilter[]>();
  private order = 0;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic()) continue;
      const prototype = Object.getPrototypeOf(instance);
      if (!prototype) continue;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const registration = this.reflector.get<FilterRegistration | undefined>(
          DISCOURSE_CONNECT_FILTER,
          prototype[method],
        );
        if (!registration) continue;
        const fn = (instance[method] as FilterFn).bind(instance);
        this.add(
          registration.name,
          fn,
          registration.priority,
          `${prototype.constructor.name}.${method}`,
        );
      }
    }
  }

  /** Registers a filter by code (the decorator is the usual way). */
  add<K extends DiscourseConnectFilterName>(
    name: K,
    fn: (
      value: DiscourseConnectFilters[K]['value'],
      context: DiscourseConnectFilters[K]['context'],
    ) => unknown,
    priority = 10,
    label = fn.name || 'anonymous filter',
  ): void {
    const list = this.filters.get(name) ?? [];
    list.push({ priority, order: this.order++, label, fn: fn as FilterFn });
    list.sort((a, b) => a.priority - b.priority || a.order - b.order);
    this.filters.set(name, list);
  }

  has(name: DiscourseConnectFilterName): boolean {
    return (this.filters.get(name)?.length ?? 0) > 0;
  }

  /**
   * Runs every filter of `name` over `value` in priority order.
   *
   * @throws FilterFailedError when a filter throws (fail closed); a page a filter throws on purpose
   *   (a `DiscourseConnectHttpException`) goes through as it is.
   */
  async apply<K extends DiscourseConnectFilterName>(
    name: K,
    value: DiscourseConnectFilters[K]['value'],
    context: DiscourseConnectFilters[K]['context'],
  ): Promise<DiscourseConnectFilters[K]['value']> {
    return this.applyNow(name, value, context);
  }

  /**
   * {@link apply} without a promise while the filters answer at once: the filtered value, or a
   * promise of it from the first filter that answers with one. Throws (or rejects) as `apply` does.
   */
  applyNow<K extends DiscourseConnectFilterName>(
    name: K,
    value: DiscourseConnectFilters[K]['value'],
    context: DiscourseConnectFilters[K]['context'],
  ): MaybePromise<DiscourseConnectFilters[K]['value']> {
    const list = this.filters.get(name);
    if (list === undefined) return value;
    let current: unknown = value;
    for (let i = 0; i < list.length; i++) {
      let result: unknown;
      try {
        result = list[i].fn(current, context);
      } catch (error) {
        throw this.failure(name, list[i], error);
      }
      if (isThenable(result)) {
        return this.applyRest(name, list, i, result, context) as Promise<
          DiscourseConnectFilters[K]['value']
        >;
      }
      current = result;
    }
    return current as DiscourseConnectFilters[K]['value'];
  }

  /** The filters from `list[i]` on, once `list[i]` answered with a promise. */
  private async applyRest(
    name: DiscourseConnectFilterName,
    list: readonly RegisteredFilter[],
    i: number,
    pending: PromiseLike<unknown>,
    context: unknown,
  ): Promise<unknown> {
    let current: unknown;
    try {
      current = await pending;
    } catch (error) {
      throw this.failure(name, list[i], error);
    }
    for (let j = i + 1; j < list.length; j++) {
      try {
        current = await list[j].fn(current, context);
      } catch (error) {
        throw this.failure(name, list[j], error);
      }
    }
    return current;
  }

  /** What a failed filter makes the request fail with (fail closed), logged. */
  private failure(
    name: DiscourseConnectFilterName,
    filter: RegisteredFilter,
    error: unknown,
  ): unknown {
    if (error instanceof DiscourseConnectHttpException) return error;
    this.logger.error(
      `filter ${filter.label} on "${name}" threw ${(error as Error)?.name ?? 'an error'}: ${(error as Error)?.message ?? error}`,
    );
    return new FilterFailedError(name, { cause: error });
  }
}
