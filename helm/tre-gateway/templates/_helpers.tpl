{{/* Names ------------------------------------------------------------------------------------------- */}}

{{- define "tre-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tre-gateway.fullname" -}}
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

{{/* A component's object name: <fullname>-<component>, kept within 63 characters. */}}
{{- define "tre-gateway.componentName" -}}
{{- printf "%s-%s" (include "tre-gateway.fullname" .root | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" -}}
{{- end -}}

{{- define "tre-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Where the workers create executor pods. */}}
{{- define "tre-gateway.executorNamespace" -}}
{{- default .Release.Namespace .Values.executor.namespace -}}
{{- end -}}

{{- define "tre-gateway.apiServiceAccount" -}}
{{- include "tre-gateway.componentName" (dict "root" . "component" "api") -}}
{{- end -}}

{{- define "tre-gateway.workerServiceAccount" -}}
{{- include "tre-gateway.componentName" (dict "root" . "component" "worker") -}}
{{- end -}}

{{- define "tre-gateway.executorServiceAccount" -}}
{{- include "tre-gateway.componentName" (dict "root" . "component" "executor") -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------------------------ */}}

{{- define "tre-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tre-gateway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels on every object: pass (dict "root" $ "component" "api"). */}}
{{- define "tre-gateway.labels" -}}
helm.sh/chart: {{ include "tre-gateway.chart" .root }}
{{ include "tre-gateway.selectorLabels" . }}
app.kubernetes.io/part-of: tre-gateway
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The label the workers put on every executor pod; the default-deny NetworkPolicy selects it. */}}
{{- define "tre-gateway.executorSelector" -}}
tre-gateway/role: executor
{{- end -}}

{{/* The label the workers put on every stager pod; the stager NetworkPolicy selects it. */}}
{{- define "tre-gateway.stagerSelector" -}}
tre-gateway/role: stager
{{- end -}}

{{/* Image ------------------------------------------------------------------------------------------- */}}

{{- define "tre-gateway.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Security --------------------------------------------------------------------------------------- */}}

{{- define "tre-gateway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tre-gateway.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Configuration shared by every gateway container ------------------------------------------------ */}}

{{- define "tre-gateway.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* Environment beyond the ConfigMap: pass (dict "root" $ "component" "api"|"worker"|"migrate"). */}}
{{- define "tre-gateway.env" -}}
{{- $v := .root.Values -}}
- name: TRE_GATEWAY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.database.existingSecret }}
      key: {{ $v.database.key }}
{{- if eq $v.objectStore.type "s3" }}
# Credentials come from the mounted files; never let the AWS SDK probe an instance-metadata service.
- name: AWS_EC2_METADATA_DISABLED
  value: "true"
{{- end }}
{{- with $v.trustedCA.configMapName }}
- name: SSL_CERT_FILE
  value: /etc/tre-gateway/ca/{{ $v.trustedCA.key }}
- name: AWS_CA_BUNDLE
  value: /etc/tre-gateway/ca/{{ $v.trustedCA.key }}
- name: REQUESTS_CA_BUNDLE
  value: /etc/tre-gateway/ca/{{ $v.trustedCA.key }}
{{- end }}
{{- end -}}

{{- define "tre-gateway.envFrom" -}}
- configMapRef:
    name: {{ include "tre-gateway.fullname" . }}
{{- end -}}

{{/* Mounts: pass (dict "root" $ "component" "api"|"worker"|"migrate"). The migration needs only the database;
   the dev signing secret is mounted in API pods only. */}}
{{- define "tre-gateway.volumeMounts" -}}
{{- $v := .root.Values -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/tre-gateway
{{- if $v.trustedCA.configMapName }}
- name: trusted-ca
  mountPath: /etc/tre-gateway/ca
  readOnly: true
{{- end }}
{{- if ne .component "migrate" }}
{{- if eq $v.objectStore.type "s3" }}
- name: s3-credentials
  mountPath: /var/run/secrets/tre-gateway/s3
  readOnly: true
{{- end }}
{{- if and (eq $v.auth.mode "oidc") $v.auth.oidc.publicKeySecret.name }}
- name: oidc-public-key
  mountPath: /var/run/secrets/tre-gateway/oidc
  readOnly: true
{{- end }}
{{- end }}
{{- if eq .component "api" }}
{{- if eq $v.auth.mode "dev" }}
- name: dev-jwt-secret
  mountPath: /var/lib/tre-gateway/dev-jwt-secret
  subPath: {{ $v.auth.dev.key }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "tre-gateway.volumes" -}}
{{- $v := .root.Values -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ $v.scratch.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ $v.scratch.dataSizeLimit }}
{{- if eq $v.objectStore.type "s3" }}
- name: s3-credentials
  secret:
    secretName: {{ $v.objectStore.s3.credentialsSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.objectStore.s3.accessKeyIdKey }}
        path: {{ $v.objectStore.s3.accessKeyIdKey }}
      - key: {{ $v.objectStore.s3.secretAccessKeyKey }}
        path: {{ $v.objectStore.s3.secretAccessKeyKey }}
{{- end }}
{{- if $v.trustedCA.configMapName }}
- name: trusted-ca
  configMap:
    name: {{ $v.trustedCA.configMapName }}
    defaultMode: 0444
    items:
      - key: {{ $v.trustedCA.key }}
        path: {{ $v.trustedCA.key }}
{{- end }}
{{- if and (eq $v.auth.mode "oidc") $v.auth.oidc.publicKeySecret.name }}
- name: oidc-public-key
  secret:
    secretName: {{ $v.auth.oidc.publicKeySecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $v.auth.oidc.publicKeySecret.key }}
        path: {{ $v.auth.oidc.publicKeySecret.key }}
{{- end }}
{{- if eq .component "api" }}
{{- if eq $v.auth.mode "dev" }}
- name: dev-jwt-secret
  secret:
    secretName: {{ $v.auth.dev.secretName }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end -}}

{{/* Scheduling fields shared by both Deployments: pass the component's values. */}}
{{- define "tre-gateway.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule: pass a destination ({to, ports}). Empty `to` = those ports to any address. */}}
{{- define "tre-gateway.egressRule" -}}
- ports:
    {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
