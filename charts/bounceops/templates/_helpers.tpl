{{/* Names, labels and the values that several templates share. */}}

{{- define "bounceops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bounceops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bounceops.operatorName" -}}
{{- printf "%s-operator" (include "bounceops.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bounceops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bounceops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "bounceops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bounceops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: bounceops
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bounceops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bounceops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "bounceops.image" -}}
{{- $img := index . 0 }}{{- $appVersion := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $appVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* "true" or "false": leaderElection.enabled, where auto means replicaCount > 1. */}}
{{- define "bounceops.leaderElection" -}}
{{- $v := .Values.leaderElection.enabled }}
{{- if eq (toString $v) "auto" }}
{{- gt (int .Values.replicaCount) 1 }}
{{- else }}
{{- $v }}
{{- end }}
{{- end }}
