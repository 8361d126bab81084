{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.labels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.sessionKeysSecret" -}}
{{- default (printf "%s-session-keys" (include "tollgate.fullname" .)) .Values.sessionKeys.existingSecret -}}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "tollgate.paths.config" -}}/etc/tollgate/routes{{- end -}}
{{- define "tollgate.paths.data" -}}/var/lib/tollgate{{- end -}}
{{- define "tollgate.paths.audit" -}}/var/lib/tollgate/audit{{- end -}}

{{/* Whether more than one gateway process can run at once (replicas or the autoscaler's maximum). */}}
{{- define "tollgate.multiReplica" -}}
{{- if or (gt (int .Values.replicaCount) 1) (and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) 1)) -}}true{{- end -}}
{{- end -}}

{{- define "tollgate.redisConfigured" -}}
{{- $r := .Values.redis -}}
{{- if or $r.url $r.sentinel.name (gt (len $r.sentinel.nodes) 0) (gt (len $r.cluster.nodes) 0) -}}true{{- end -}}
{{- end -}}

{{/*
Render-time checks: a chart that renders is a chart whose pods can start and keep their promises. Each message says
what to set.
*/}}
{{- define "tollgate.validate" -}}
{{- $v := .Values -}}
{{- $r := $v.redis -}}
{{- $modes := 0 -}}
{{- if $r.url }}{{ $modes = add1 $modes }}{{ end -}}
{{- if or $r.sentinel.name (gt (len $r.sentinel.nodes) 0) }}{{ $modes = add1 $modes }}{{ end -}}
{{- if gt (len $r.cluster.nodes) 0 }}{{ $modes = add1 $modes }}{{ end -}}
{{- if gt $modes 1 -}}
{{- fail "tollgate: set only one of redis.url, redis.sentinel or redis.cluster" -}}
{{- end -}}
{{- if and (or $r.sentinel.name (gt (len $r.sentinel.nodes) 0)) (not (and $r.sentinel.name (gt (len $r.sentinel.nodes) 0))) -}}
{{- fail "tollgate: redis.sentinel needs both name (the master group) and nodes" -}}
{{- end -}}
{{- if and (include "tollgate.multiReplica" .) (not (include "tollgate.redisConfigured" .)) -}}
{{- $on := list -}}
{{- if $v.limits.enabled }}{{ $on = append $on "limits.enabled" }}{{ end -}}
{{- if $v.mcp.sessionRevocation }}{{ $on = append $on "mcp.sessionRevocation" }}{{ end -}}
{{- if $v.a2a.taskBinding }}{{ $on = append $on "a2a.taskBinding" }}{{ end -}}
{{- if gt (len $on) 0 -}}
{{- fail (printf "tollgate: redis is required when more than one replica runs with %s on (replicaCount=%d%s): each replica would keep its own count and limits would not hold across them. Set redis.url, redis.sentinel or redis.cluster, or run a single replica." (join ", " $on) (int $v.replicaCount) (ternary (printf ", autoscaling.maxReplicas=%d" (int $v.autoscaling.maxReplicas)) "" $v.autoscaling.enabled)) -}}
{{- end -}}
{{- end -}}
{{- $id := $v.identity -}}
{{- if and (eq (len $id.trustDomains) 0) (eq (len $id.oidc) 0) (eq (len $id.kubernetes) 0) -}}
{{- fail "tollgate: no identity configured: set identity.trustDomains (SPIFFE), identity.oidc or identity.kubernetes. The image runs the production profile and never falls back to the self-keyed dev issuer." -}}
{{- end -}}
{{- range $id.trustDomains -}}
{{- if and (hasKey .bundle "workload_api") (eq $v.spiffe.workloadApi.mode "none") -}}
{{- fail (printf "tollgate: trust domain %s takes its bundle from the Workload API but spiffe.workloadApi.mode is none: use csi or hostPath" .name) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "identity" "redis" "audit" "listener" "admin" "telemetry" "dataDir" "log" -}}
{{- if hasKey $v.gateway.extraSpec $k -}}
{{- fail (printf "tollgate: gateway.extraSpec.%s is not allowed: use the chart's own %s values" $k $k) -}}
{{- end -}}
{{- end -}}
{{- $drainSeconds := div (add (int $v.gateway.drainMs) 999) 1000 -}}
{{- if le (int $v.terminationGracePeriodSeconds) (add (int $v.preStopSleepSeconds) $drainSeconds) -}}
{{- fail (printf "tollgate: terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds (%d) + gateway.drainMs (%ds), or Kubernetes kills pods before in-flight streams finish" (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds) $drainSeconds) -}}
{{- end -}}
{{- if and $v.audit.verify.enabled (not $v.audit.persistence.enabled) -}}
{{- fail "tollgate: audit.verify needs audit.persistence.enabled (the job reads the replicas' segments from the shared claim)" -}}
{{- end -}}
{{- if and $v.policy.bundleConfigMap (gt (len $v.policy.rego) 0) -}}
{{- fail "tollgate: set policy.rego or policy.bundleConfigMap, not both" -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas)) -}}
{{- fail "tollgate: autoscaling.maxReplicas must be >= autoscaling.minReplicas" -}}
{{- end -}}
{{- end -}}

{{/* The Gateway settings that only take effect at start: their checksum on the pod template rolls the pods. */}}
{{- define "tollgate.restartSettings" -}}
{{- $v := .Values -}}
{{- $audit := dict "enabled" $v.audit.enabled "signingKey" $v.audit.signingKey "sinks" $v.audit.sinks "persistence" $v.audit.persistence -}}
{{- $s := dict "listener" (dict "port" $v.service.port "publicUrl" $v.gateway.publicUrl) "admin" (dict "port" $v.admin.port) "log" $v.gateway.logLevel "telemetry" (dict "otel" $v.otel) "audit" $audit "redis" $v.redis "spiffe" $v.spiffe -}}
{{- toJson $s -}}
{{- end -}}

{{- define "tollgate.redisSpec" -}}
{{- $r := .Values.redis -}}
{{- $out := dict "tls" $r.tls "keyPrefix" $r.keyPrefix "commandTimeoutMs" (int $r.commandTimeoutMs) "connectTimeoutMs" (int $r.connectTimeoutMs) -}}
{{- if $r.url }}{{ $_ := set $out "url" $r.url }}{{ end -}}
{{- if $r.sentinel.name -}}
{{- $sentinel := dict "name" $r.sentinel.name "nodes" $r.sentinel.nodes -}}
{{- if $r.sentinel.password.existingSecret }}{{ $_ := set $sentinel "password" (dict "valueFrom" (dict "env" "TOLLGATE_REDIS_SENTINEL_PASSWORD")) }}{{ end -}}
{{- $_ := set $out "sentinel" $sentinel -}}
{{- end -}}
{{- if gt (len $r.cluster.nodes) 0 }}{{ $_ := set $out "cluster" (dict "nodes" $r.cluster.nodes) }}{{ end -}}
{{- if $r.username }}{{ $_ := set $out "username" $r.username }}{{ end -}}
{{- if $r.password.existingSecret }}{{ $_ := set $out "password" (dict "valueFrom" (dict "env" "TOLLGATE_REDIS_PASSWORD")) }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "tollgate.policySpec" -}}
{{- $p := .Values.policy -}}
{{- $out := dict -}}
{{- if gt (len $p.rego) 0 -}}
{{- $_ := set $out "dir" "/etc/tollgate/policies" -}}
{{- else if $p.bundleConfigMap -}}
{{- $_ := set $out "bundle" "/etc/tollgate/policy-bundle/tollgate.tar.gz" -}}
{{- else -}}
{{- $_ := set $out "bundle" "/app/bundles/tollgate.tar.gz" -}}
{{- end -}}
{{- if $p.service }}{{ $_ := set $out "service" $p.service }}{{ end -}}
{{- if $p.verification }}{{ $_ := set $out "verification" $p.verification }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The Gateway object the pods load (gateway.yaml in the config ConfigMap). */}}
{{- define "tollgate.gatewaySpec" -}}
{{- $v := .Values -}}
{{- $listener := dict "host" "0.0.0.0" "port" (int $v.service.port) -}}
{{- if $v.gateway.publicUrl }}{{ $_ := set $listener "publicUrl" $v.gateway.publicUrl }}{{ end -}}
{{- $keys := list -}}
{{- range $v.sessionKeys.ids -}}
{{- $keys = append $keys (dict "id" . "valueFrom" (dict "file" (printf "/etc/tollgate/session-keys/%s" .))) -}}
{{- end -}}
{{- $identity := dict "clockSkewSeconds" (int $v.identity.clockSkewSeconds) "trustDomains" $v.identity.trustDomains "oidc" $v.identity.oidc "kubernetes" $v.identity.kubernetes "dev" (dict "enabled" false) -}}
{{- if $v.identity.audiences }}{{ $_ := set $identity "audiences" $v.identity.audiences }}{{ end -}}
{{- $audit := dict "enabled" $v.audit.enabled "dir" (include "tollgate.paths.audit" .) "buffer" (dict "onFull" $v.audit.onFull) "arguments" (dict "mode" $v.audit.arguments) "sinks" $v.audit.sinks -}}
{{- if $v.audit.signingKey.existingSecret }}{{ $_ := set $audit "signingKey" (dict "valueFrom" (dict "file" (printf "/etc/tollgate/audit-key/%s" $v.audit.signingKey.key))) }}{{ end -}}
{{- $telemetry := dict "exportThread" $v.otel.exportThread "tracing" (dict "enabled" "auto" "serviceName" $v.otel.serviceName) "metrics" (dict "prometheus" true "otlp" "auto") -}}
{{- $spec := dict "listener" $listener "http" $v.gateway.http "shutdown" (dict "drainMs" (int $v.gateway.drainMs)) "log" (dict "level" $v.gateway.logLevel) "dataDir" (include "tollgate.paths.data" .) -}}
{{- $_ := set $spec "mcp" (dict "sessionIdleMs" (int $v.gateway.mcp.sessionIdleMs) "sessionTtlMs" (int $v.gateway.mcp.sessionTtlMs) "sessionKeys" $keys) -}}
{{- $_ := set $spec "identity" $identity -}}
{{- $_ := set $spec "audit" $audit -}}
{{- $_ := set $spec "telemetry" $telemetry -}}
{{- $_ := set $spec "policy" (include "tollgate.policySpec" . | fromJson) -}}
{{- $admin := dict -}}
{{- if $v.admin.principals }}{{ $_ := set $admin "principals" $v.admin.principals }}{{ end -}}
{{- if $v.admin.groups }}{{ $_ := set $admin "groups" $v.admin.groups }}{{ end -}}
{{- if $v.admin.console.enabled }}
{{- if not (or $v.admin.principals $v.admin.groups) }}{{ fail "admin.console.enabled needs admin.principals or admin.groups: the console is never anonymous" }}{{ end -}}
{{- $console := dict "enabled" true -}}
{{- if $v.admin.console.traceUrl }}{{ $_ := set $console "traceUrl" $v.admin.console.traceUrl }}{{ end -}}
{{- $_ := set $admin "console" $console -}}
{{- end -}}
{{- if $admin }}{{ $_ := set $spec "admin" $admin }}{{ end -}}
{{- if include "tollgate.redisConfigured" . }}{{ $_ := set $spec "redis" (include "tollgate.redisSpec" . | fromJson) }}{{ end -}}
{{- $spec = mergeOverwrite $spec (deepCopy $v.gateway.extraSpec) -}}
{{- $doc := dict "apiVersion" "tollgate.dev/v1alpha1" "kind" "Gateway" "metadata" (dict "name" (include "tollgate.fullname" .)) "spec" $spec -}}
{{- toYaml $doc -}}
{{- end -}}
