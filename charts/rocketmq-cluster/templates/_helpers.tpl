{{- define "rocketmq-cluster.nameServer" -}}
{{- default (printf "%s-namesrv" .Release.Name) .Values.nameServer.name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "rocketmq-cluster.labels" -}}
app.kubernetes.io/part-of: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
