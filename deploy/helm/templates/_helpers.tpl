{{/* Names and labels */}}
{{- define "broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "broker.fullname" -}}
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

{{- define "broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "broker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "broker.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "broker.envSecretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-env" (include "broker.fullname" .)) -}}
{{- end -}}

{{- define "broker.keysSecretName" -}}
{{- .Values.signingKeys.existingSecret | default (printf "%s-signing-keys" (include "broker.fullname" .)) -}}
{{- end -}}

{{- define "broker.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.drainSeconds .Values.shutdown.graceSeconds .Values.shutdown.marginSeconds -}}
{{- end -}}

{{/*
broker.yaml: .Values.config with what the chart owns laid over it (listening address, trusted
proxies, shutdown timings, the secrets as ${ENV} references, the mounted key files).
*/}}
{{- define "broker.configYaml" -}}
{{- $keys := dict "current" (dict "key" "/etc/broker/keys/signing.key.pem" "cert" "/etc/broker/keys/signing.cert.pem") -}}
{{- if .Values.signingKeys.next -}}
{{- $_ := set $keys "next" (dict "key" "/etc/broker/keys/next.key.pem" "cert" "/etc/broker/keys/next.cert.pem") -}}
{{- end -}}
{{- $owned := dict
  "server" (dict
    "host" "0.0.0.0"
    "port" 8000
    "trusted_proxies" .Values.trustedProxies
    "drain_seconds" .Values.shutdown.drainSeconds
    "shutdown_grace_seconds" .Values.shutdown.graceSeconds)
  "database" (dict "password" "${BROKER_DB_PASSWORD}")
  "state" (dict "backend" "redis" "redis_url" "${BROKER_REDIS_URL}")
  "admin" (dict "bootstrap_token_env" "BROKER_ADMIN_TOKEN")
  "keys" $keys -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $owned) -}}
{{- end -}}

{{/* The pod's environment: every secret by reference (secretKeyRef), never a value. */}}
{{- define "broker.env" -}}
- name: BROKER_CONFIG
  value: /etc/broker/broker.yaml
- name: BROKER_DB_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "broker.envSecretName" . }}, key: {{ .Values.secrets.keys.dbPassword }}}
- name: BROKER_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.redis.existingSecret | default (include "broker.envSecretName" .) }}, key: {{ .Values.redis.key }}}
- name: BROKER_ADMIN_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "broker.envSecretName" . }}, key: {{ .Values.secrets.keys.adminToken }}, optional: true}
{{- range $name, $key := .Values.secrets.extraEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: {name: {{ include "broker.envSecretName" $ }}, key: {{ $key }}}
{{- end }}
{{- end -}}

{{- define "broker.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "broker.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: ["ALL"]}
{{- end -}}
