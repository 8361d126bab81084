/**
 * Offline validation of rendered Kubernetes objects against the OpenAPI schemas of a pinned Kubernetes API
 * (kubernetes-models 5.1.0; Gateway API and Prometheus Operator models for HTTPRoute, ServiceMonitor and
 * PrometheusRule). Two checks per object:
 *   1. the models' compiled JSON-schema validators (types, enums, required fields, formats);
 *   2. unknown fields: those validators allow extra properties (the API server drops them silently, which is how a
 *      mis-indented chart key goes unnoticed), so every object is also type-checked by TypeScript against the models'
 *      interfaces, whose excess-property check refuses any field the API does not define.
 */
import { join } from 'node:path';
import ts from 'typescript';

export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly [k: string]: unknown };
  readonly [k: string]: unknown;
}

/** apiVersion -> module whose exports are that group/version's models. */
function modelModule(apiVersion: string): string {
  if (apiVersion === 'v1') return 'kubernetes-models/v1';
  if (apiVersion.startsWith('gateway.networking.k8s.io/')) return `@kubernetes-models/gateway-api/${apiVersion}`;
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Check 1: the schema validator of the object's model. Returns the problems (empty: valid). */
export async function schemaProblems(obj: K8sObject): Promise<string[]> {
  const mod = (await import(modelModule(obj.apiVersion))) as Record<string, ModelClass | undefined>;
  const Model = mod[obj.kind];
  if (Model === undefined) return [`no model for ${obj.apiVersion} ${obj.kind}`];
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    const details = (err as { errors?: Array<{ instancePath: string; message?: string; params?: unknown }> }).errors;
    if (details) return details.map((e) => `${obj.kind}/${obj.metadata.name}${e.instancePath}: ${e.message ?? JSON.stringify(e.params)}`);
    return [`${obj.kind}/${obj.metadata.name}: ${(err as Error).message}`];
  }
}

/**
 * Check 2: every object as a typed literal (`const o: IDeployment = {...}`) in one TypeScript program; returns the
 * compiler's complaints (unknown fields, wrong types) per object.
 */
export function typeProblems(objects: readonly K8sObject[]): string[] {
  const root = process.cwd();
  const file = join(root, '__rendered_k8s_objects__.ts');
  const lines: string[] = [];
  objects.forEach((o, i) => {
    lines.push(`import type { I${o.kind} as T${i} } from '${modelModule(o.apiVersion)}';`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(o)};`);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, onError, create);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file?.fileName !== file || d.start === undefined) return text;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const idx = Math.floor(line / 2);
    const o = objects[idx];
    return `${o ? `${o.kind}/${o.metadata.name}` : `line ${line}`}: ${text}`;
  });
}
