{{/* Names and labels shared by every template. */}}

{{- define "glasshouse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "glasshouse" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-glasshouse" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "glasshouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: glasshouse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one service's pods: (dict "root" $ "name" "order"). */}}
{{- define "glasshouse.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Labels of one service's objects. */}}
{{- define "glasshouse.svcLabels" -}}
{{ include "glasshouse.labels" .root }}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: service
{{- end -}}

{{/* The Kubernetes name of one service: <fullname>-<service>. */}}
{{- define "glasshouse.svcName" -}}
{{- printf "%s-%s" (include "glasshouse.fullname" .root) .name -}}
{{- end -}}

{{/* The in-cluster host of one service (Istio hosts, base URLs). */}}
{{- define "glasshouse.svcHost" -}}
{{- printf "%s.%s.svc.cluster.local" (include "glasshouse.svcName" .) .root.Release.Namespace -}}
{{- end -}}

{{/* The SPIFFE principal of one service's ServiceAccount. */}}
{{- define "glasshouse.principal" -}}
{{- printf "%s/ns/%s/sa/%s" .root.Values.istio.trustDomain .root.Release.Namespace (include "glasshouse.svcName" .) -}}
{{- end -}}

{{/* The principal of the ingress gateway. */}}
{{- define "glasshouse.gatewayPrincipal" -}}
{{- printf "%s/ns/%s/sa/%s" .Values.istio.trustDomain .Values.istio.gateway.namespace .Values.istio.gateway.serviceAccount -}}
{{- end -}}

{{/* The image of one service; never `latest`. */}}
{{- define "glasshouse.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := printf "%s/%s%s" $img.registry $img.repositoryPrefix .name -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- $tag := $img.tag | default .root.Chart.AppVersion -}}
{{- if eq $tag "latest" -}}{{- fail "image.tag: `latest` is not allowed; pin a version or a digest" -}}{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The dotted settings of one service, common ones first, then the service's, then
     what the chart computes. Values are strings; empty ones are left out. */}}
{{- define "glasshouse.settings" -}}
{{- $svc := index .root.Values.services .name -}}
{{- $out := dict -}}
{{- range $k, $v := .root.Values.commonSettings }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- range $k, $v := $svc.settings }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- $_ := set $out "http.port" (toString $svc.port) -}}
{{- $_ := set $out "auth.jwks.file" (printf "%s/jwks.json" .root.Values.auth.mountPath) -}}
{{- if eq .name "order" -}}
{{- if not (get $out "inventory.base_url") -}}
{{- $_ := set $out "inventory.base_url" (printf "http://%s:%v" (include "glasshouse.svcHost" (dict "root" .root "name" "inventory")) .root.Values.services.inventory.port) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out "faults.file" "/etc/glasshouse/faults/faults.json" -}}
{{- $env := dict -}}
{{- range $k, $v := $out }}{{ if $v }}{{ $_ := set $env (printf "APP_%s" ($k | replace "." "__" | upper)) $v }}{{ end }}{{ end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* The services that are enabled, in a fixed order. */}}
{{- define "glasshouse.enabledServices" -}}
{{- range $name := list "order" "inventory" "notification" -}}
{{- if (index $.Values.services $name).enabled }}{{ $name }} {{ end -}}
{{- end -}}
{{- end -}}


{{/* Egress of one service's pods (and its migration Job's) to its own database,
     Kafka, the OTLP collector and the log backends: (dict "root" $ "name" "order"). */}}
{{- define "glasshouse.backendEgress" -}}
{{- if $.root.Values.networkPolicy.backendCidrs }}
# Its own database, Kafka, the OTLP collector and the log backends.
# (An empty `to` would allow every destination: the rule is left out instead.)
- to:
    {{- range $.root.Values.networkPolicy.backendCidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {port: {{ index $.root.Values.networkPolicy.ports (index (dict "order" "postgres" "inventory" "mysql" "notification" "mongodb") $.name) }}, protocol: TCP}
    {{- range (concat $.root.Values.networkPolicy.ports.kafka $.root.Values.networkPolicy.ports.otlp $.root.Values.networkPolicy.ports.logs) }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}
{{- range $.root.Values.networkPolicy.inClusterBackends }}
- to:
    - podSelector:
        matchLabels: {{ toYaml .podLabels | nindent 10 }}
  ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}
{{- end -}}

{{/* Selector labels of one service's migration Job pods (never the Service's). */}}
{{- define "glasshouse.migrateSelector" -}}
app.kubernetes.io/name: {{ .name }}-migrate
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Labels of one service's migration Job and its hook objects. */}}
{{- define "glasshouse.migrateLabels" -}}
{{ include "glasshouse.labels" .root }}
app.kubernetes.io/name: {{ .name }}-migrate
app.kubernetes.io/component: migration
{{- end -}}
