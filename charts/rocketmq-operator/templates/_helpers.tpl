{{/* Release-scoped name, at most 63 characters (a DNS label). */}}
{{- define "rocketmq-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rocketmq-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rocketmq-operator.labels" -}}
{{ include "rocketmq-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rocketmq-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rocketmq-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The Secret holding the cluster's admin credential (keys accessKey and secretKey).
*/}}
{{- define "rocketmq-operator.adminSecretName" -}}
{{- .Values.adminCredential.existingSecret | default (printf "%s-admin-credential" (include "rocketmq-operator.fullname" .)) }}
{{- end }}
