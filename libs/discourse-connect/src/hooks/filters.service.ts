import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { DiscourseConnectHttpException } from '../common/discourse-connect.exceptions';
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
    let current: unknown = value;
    for (const filter of this.filters.get(name) ?? []) {
      try {
        current = await filter.fn(current, context);
      } catch (error) {
        if (error instanceof DiscourseConnectHttpException) throw error;
        this.logger.error(
          `filter ${filter.label} on "${name}" threw ${(error as Error)?.name ?? 'an error'}: ${(error as Error)?.message ?? error}`,
        );
        throw new FilterFailedError(name, { cause: error });
      }
    }
    return current as DiscourseConnectFilters[K]['value'];
  }
}
