/**
 * Bridges the prom-client registry to OTLP: a MetricProducer that an OTel PeriodicExportingMetricReader collects
 * from, converting counters to monotonic sums, gauges to gauges and histograms to explicit-bucket histograms. The
 * metrics are recorded once (by prom-client, the cheaper library per call) and exported both ways.
 */
import type { Attributes, HrTime } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type client from 'prom-client';

interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

function attrs(labels: Record<string, string | number>, skip?: string): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(labels)) if (k !== skip) out[k] = v;
  return out;
}

export class PrometheusRegistryProducer implements MetricProducer {
  private readonly registry: client.Registry;
  private readonly start: HrTime = hrTime();

  constructor(registry: client.Registry) {
    this.registry = registry;
  }

  async collect(): Promise<CollectionResult> {
    const now = hrTime();
    const metrics: MetricData[] = [];
    for (const m of await this.registry.getMetricsAsJSON()) {
      const values = m.values as PromValue[];
      const descriptor = { name: m.name, description: m.help, unit: m.name.endsWith('_seconds') ? 's' : '', valueType: ValueType.DOUBLE };
      const type = String(m.type);
      if (type === 'counter') {
        metrics.push({
          descriptor,
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints: values.map((v) => ({ startTime: this.start, endTime: now, attributes: attrs(v.labels), value: v.value })),
        });
      } else if (type === 'gauge') {
        metrics.push({
          descriptor,
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.GAUGE,
          dataPoints: values.map((v) => ({ startTime: this.start, endTime: now, attributes: attrs(v.labels), value: v.value })),
        });
      } else if (type === 'histogram') {
        // prom-client lists _bucket (cumulative, with `le`), _sum and _count per label set.
        const series = new Map<string, { attributes: Attributes; bounds: number[]; cumulative: number[]; sum: number; count: number }>();
        for (const v of values) {
          const attributes = attrs(v.labels, 'le');
          const key = JSON.stringify(attributes);
          let s = series.get(key);
          if (!s) {
            s = { attributes, bounds: [], cumulative: [], sum: 0, count: 0 };
            series.set(key, s);
          }
          if (v.metricName?.endsWith('_bucket')) {
            if (v.labels.le !== '+Inf') {
              s.bounds.push(Number(v.labels.le));
              s.cumulative.push(v.value);
            }
          } else if (v.metricName?.endsWith('_sum')) s.sum = v.value;
          else if (v.metricName?.endsWith('_count')) s.count = v.value;
        }
        metrics.push({
          descriptor,
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: [...series.values()].map((s) => {
            const counts = s.cumulative.map((c, i) => c - (i === 0 ? 0 : s.cumulative[i - 1]!));
            counts.push(s.count - (s.cumulative[s.cumulative.length - 1] ?? 0));
            return { startTime: this.start, endTime: now, attributes: s.attributes, value: { buckets: { boundaries: s.bounds, counts }, sum: s.sum, count: s.count } };
          }),
        });
      }
    }
    return { resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: { name: 'tollgate' }, metrics }] }, errors: [] };
  }
}
