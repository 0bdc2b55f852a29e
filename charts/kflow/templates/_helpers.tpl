{{/* The release's name prefix, at most 52 characters (room for suffixes). */}}
{{- define "kflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kflow.labels" -}}
app.kubernetes.io/name: kflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kflow.operatorSelector" -}}
app.kubernetes.io/name: kflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kflow.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (.Values.operator.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* "*" in watchNamespaces: every namespace (cluster-wide RBAC). */}}
{{- define "kflow.clusterWide" -}}
{{- if has "*" .Values.operator.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches (the release's when none given). */}}
{{- define "kflow.namespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- join "," .Values.operator.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding KFLOW_S3_ACCESS_KEY and KFLOW_S3_SECRET_KEY. */}}
{{- define "kflow.s3SecretName" -}}
{{- $store := .Values.objectStore -}}
{{- if eq $store.mode "bundled" -}}
{{- $store.bundled.existingSecret | default (printf "%s-s3-keys" (include "kflow.fullname" .)) -}}
{{- else -}}
{{- $store.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The bundled store's Deployment, Service and claim. */}}
{{- define "kflow.bundledName" -}}
{{- printf "%s-s3" (include "kflow.fullname" .) -}}
{{- end -}}

{{- define "kflow.bundledSelector" -}}
app.kubernetes.io/name: kflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: object-store
{{- end -}}

{{/* The object store's URL as the pods see it. */}}
{{- define "kflow.s3Endpoint" -}}
{{- $store := .Values.objectStore -}}
{{- if eq $store.mode "bundled" -}}
{{- $store.bundled.endpoint | default (printf "http://%s.%s.svc:%v" (include "kflow.bundledName" .) .Release.Namespace $store.bundled.ports.s3) -}}
{{- else -}}
{{- required "objectStore.external.endpoint is required with objectStore.mode=external (the S3 endpoint as seen from the pods, e.g. http://minio.minio.svc:9000)" $store.external.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "kflow.s3ConfigName" -}}
{{- printf "%s-s3" (include "kflow.fullname" .) -}}
{{- end -}}

{{- define "kflow.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}
