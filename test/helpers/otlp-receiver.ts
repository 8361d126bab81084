/**
 * A real OTLP receiver for tests: an HTTP server taking OTLP/HTTP exports (POST /v1/traces, /v1/metrics, /v1/logs)
 * in protobuf or, by content type, JSON, and a gRPC server for the same services. Protobuf is decoded with
 * protobufjs from the OTLP proto definitions (the subset of opentelemetry-proto's messages and field numbers the
 * tests read; unknown fields are skipped by the decoder, as protobuf requires); JSON per the OTLP/JSON mapping
 * (lowerCamelCase fields, ids as hex strings).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const PROTO = `
syntax = "proto3";
package otlp;
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7; } }
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message InstrumentationScope { string name = 1; string version = 2; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; repeated SpanEvent events = 11;
  Status status = 15;
}
message SpanEvent { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message NumberDataPoint { repeated KeyValue attributes = 7; double as_double = 4; sfixed64 as_int = 6; }
message HistogramDataPoint { repeated KeyValue attributes = 9; fixed64 count = 4; double sum = 5; repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7; }
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message Metric { string name = 1; string description = 2; string unit = 3; Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message LogRecord { fixed64 time_unix_nano = 1; int32 severity_number = 2; string severity_text = 3; AnyValue body = 5; repeated KeyValue attributes = 6; bytes trace_id = 9; bytes span_id = 10; string event_name = 12; }
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; }
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const TraceRequest = root.lookupType('otlp.ExportTraceServiceRequest');
const MetricsRequest = root.lookupType('otlp.ExportMetricsServiceRequest');
const LogsRequest = root.lookupType('otlp.ExportLogsServiceRequest');

export type AttrValue = string | number | boolean | undefined | AttrValue[];

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Record<string, AttrValue>;
  /** The span's events (guard stages, by default), in order. */
  readonly events: ReadonlyArray<{ name: string; attributes: Record<string, AttrValue> }>;
  readonly status: { code: number; message: string };
  readonly resource: Record<string, AttrValue>;
  readonly via: 'http' | 'http/json' | 'grpc';
}

export interface ReceivedMetric {
  readonly name: string;
  readonly kind: 'sum' | 'gauge' | 'histogram';
  readonly points: Array<{ attributes: Record<string, AttrValue>; value: number }>;
}

export interface ReceivedLog {
  readonly body: AttrValue;
  readonly attributes: Record<string, AttrValue>;
}

interface PbKeyValue {
  key: string;
  value?: PbAnyValue;
}

interface PbAnyValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: number | { toNumber(): number };
  double_value?: number;
  array_value?: { values?: PbAnyValue[] };
}

function value(v: PbAnyValue | undefined): AttrValue {
  if (v === undefined) return undefined;
  if (v.array_value !== undefined) return (v.array_value.values ?? []).map(value);
  if (v.string_value !== undefined) return v.string_value;
  if (v.bool_value !== undefined) return v.bool_value;
  if (v.int_value !== undefined) return typeof v.int_value === 'number' ? v.int_value : v.int_value.toNumber();
  if (v.double_value !== undefined) return v.double_value;
  return undefined;
}

function attributes(kvs: PbKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = value(kv.value);
  return out;
}

const hex = (b: Uint8Array | undefined): string => (b === undefined ? '' : Buffer.from(b).toString('hex'));

/** OTLP/JSON: an AnyValue ({stringValue}, {intValue} as number or string...) as the tests read it. */
interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: JsonAnyValue[] };
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}

function jsonValue(v: JsonAnyValue | undefined): AttrValue {
  if (v === undefined) return undefined;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(jsonValue);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return undefined;
}

function jsonAttributes(kvs: JsonKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = jsonValue(kv.value);
  return out;
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly metrics: ReceivedMetric[] = [];
  readonly logs: ReceivedLog[] = [];
  httpUrl = '';
  grpcUrl = '';
  private http: Server | undefined;
  private grpc: grpc.Server | undefined;

  private ingestTraces(buf: Uint8Array, via: 'http' | 'grpc'): void {
    const req = TraceRequest.toObject(TraceRequest.decode(buf), { defaults: false }) as {
      resource_spans?: Array<{ resource?: { attributes?: PbKeyValue[] }; scope_spans?: Array<{ spans?: Array<Record<string, unknown>> }> }>;
    };
    for (const rs of req.resource_spans ?? []) {
      const resource = attributes(rs.resource?.attributes);
      for (const ss of rs.scope_spans ?? []) {
        for (const s of ss.spans ?? []) {
          const status = (s.status ?? {}) as { code?: number; message?: string };
          this.spans.push({
            traceId: hex(s.trace_id as Uint8Array),
            spanId: hex(s.span_id as Uint8Array),
            parentSpanId: hex(s.parent_span_id as Uint8Array | undefined),
            name: s.name as string,
            kind: (s.kind as number | undefined) ?? 0,
            attributes: attributes(s.attributes as PbKeyValue[]),
            events: ((s.events ?? []) as Array<{ name?: string; attributes?: PbKeyValue[] }>).map((e) => ({ name: e.name ?? '', attributes: attributes(e.attributes) })),
            status: { code: status.code ?? 0, message: status.message ?? '' },
            resource,
            via,
          });
        }
      }
    }
  }

  private ingestJsonTraces(body: string): void {
    type JsonSpan = {
      traceId: string;
      spanId: string;
      parentSpanId?: string;
      name: string;
      kind?: number;
      attributes?: JsonKeyValue[];
      events?: Array<{ name?: string; attributes?: JsonKeyValue[] }>;
      status?: { code?: number; message?: string };
    };
    const req = JSON.parse(body) as { resourceSpans?: Array<{ resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: Array<{ spans?: JsonSpan[] }> }> };
    for (const rs of req.resourceSpans ?? []) {
      const resource = jsonAttributes(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            kind: s.kind ?? 0,
            attributes: jsonAttributes(s.attributes),
            events: (s.events ?? []).map((e) => ({ name: e.name ?? '', attributes: jsonAttributes(e.attributes) })),
            status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
            resource,
            via: 'http/json',
          });
        }
      }
    }
  }

  private ingestJsonMetrics(body: string): void {
    type Point = { attributes?: JsonKeyValue[]; asDouble?: number; asInt?: number | string; count?: number | string };
    type Metric = { name: string; sum?: { dataPoints?: Point[] }; gauge?: { dataPoints?: Point[] }; histogram?: { dataPoints?: Point[] } };
    const req = JSON.parse(body) as { resourceMetrics?: Array<{ scopeMetrics?: Array<{ metrics?: Metric[] }> }> };
    for (const rm of req.resourceMetrics ?? []) {
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const kind = m.histogram ? 'histogram' : m.sum ? 'sum' : 'gauge';
          const pts = (m.histogram ?? m.sum ?? m.gauge)?.dataPoints ?? [];
          this.metrics.push({ name: m.name, kind, points: pts.map((p) => ({ attributes: jsonAttributes(p.attributes), value: Number(kind === 'histogram' ? p.count : (p.asDouble ?? p.asInt ?? 0)) })) });
        }
      }
    }
  }

  private ingestJsonLogs(body: string): void {
    const req = JSON.parse(body) as { resourceLogs?: Array<{ scopeLogs?: Array<{ logRecords?: Array<{ body?: JsonAnyValue; attributes?: JsonKeyValue[] }> }> }> };
    for (const rl of req.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) for (const r of sl.logRecords ?? []) this.logs.push({ body: jsonValue(r.body), attributes: jsonAttributes(r.attributes) });
  }

  private ingestMetrics(buf: Uint8Array): void {
    type Point = { attributes?: PbKeyValue[]; as_double?: number; as_int?: number | { toNumber(): number }; count?: number | { toNumber(): number } };
    const req = MetricsRequest.toObject(MetricsRequest.decode(buf), { longs: Number }) as {
      resource_metrics?: Array<{ scope_metrics?: Array<{ metrics?: Array<{ name: string; sum?: { data_points?: Point[] }; gauge?: { data_points?: Point[] }; histogram?: { data_points?: Point[] } }> }> }>;
    };
    for (const rm of req.resource_metrics ?? []) {
      for (const sm of rm.scope_metrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const kind = m.histogram ? 'histogram' : m.sum ? 'sum' : 'gauge';
          const pts = (m.histogram ?? m.sum ?? m.gauge)?.data_points ?? [];
          this.metrics.push({
            name: m.name,
            kind,
            points: pts.map((p) => ({ attributes: attributes(p.attributes), value: Number(kind === 'histogram' ? p.count : (p.as_double ?? p.as_int ?? 0)) })),
          });
        }
      }
    }
  }

  private ingestLogs(buf: Uint8Array): void {
    const req = LogsRequest.toObject(LogsRequest.decode(buf)) as {
      resource_logs?: Array<{ scope_logs?: Array<{ log_records?: Array<{ body?: PbKeyValue['value']; attributes?: PbKeyValue[] }> }> }>;
    };
    for (const rl of req.resource_logs ?? []) for (const sl of rl.scope_logs ?? []) for (const r of sl.log_records ?? []) this.logs.push({ body: value(r.body), attributes: attributes(r.attributes) });
  }

  async start(): Promise<void> {
    this.http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const json = (req.headers['content-type'] ?? '').includes('json');
        try {
          if (req.url === '/v1/traces') {
            if (json) this.ingestJsonTraces(body.toString());
            else this.ingestTraces(body, 'http');
          } else if (req.url === '/v1/metrics') {
            if (json) this.ingestJsonMetrics(body.toString());
            else this.ingestMetrics(body);
          } else if (req.url === '/v1/logs') {
            if (json) this.ingestJsonLogs(body.toString());
            else this.ingestLogs(body);
          } else {
            res.writeHead(404).end();
            return;
          }
          // An empty Export*ServiceResponse.
          if (json) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
          else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } catch (err) {
          res.writeHead(400).end(String(err));
        }
      });
    });
    await new Promise<void>((r) => this.http!.listen(0, '127.0.0.1', r));
    this.httpUrl = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;

    this.grpc = new grpc.Server();
    const unary = (ingest: (b: Uint8Array) => void): grpc.UntypedServiceImplementation[string] =>
      ((call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        ingest(call.request);
        callback(null, Buffer.alloc(0));
      }) as grpc.UntypedServiceImplementation[string];
    const method = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    });
    this.grpc.addService({ Export: method('/opentelemetry.proto.collector.trace.v1.TraceService/Export') }, { Export: unary((b) => this.ingestTraces(b, 'grpc')) });
    this.grpc.addService({ Export: method('/opentelemetry.proto.collector.metrics.v1.MetricsService/Export') }, { Export: unary((b) => this.ingestMetrics(b)) });
    this.grpc.addService({ Export: method('/opentelemetry.proto.collector.logs.v1.LogsService/Export') }, { Export: unary((b) => this.ingestLogs(b)) });
    const port = await new Promise<number>((resolve, reject) =>
      this.grpc!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.grpcUrl = `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    this.grpc?.forceShutdown();
    this.http?.closeAllConnections();
    await new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
  }
}
