{{- define "guardian.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "guardian.labels" -}}
app.kubernetes.io/name: guardian
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "guardian.selector" -}}
app.kubernetes.io/name: guardian
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* One document of a multi-document file under files/, by kind and metadata.name. */}}
{{- define "guardian.doc" -}}
{{- $ctx := index . 0 -}}{{- $file := index . 1 -}}{{- $kind := index . 2 -}}{{- $name := index . 3 -}}
{{- range regexSplit "(?m)^---\\s*$" ($ctx.Files.Get $file) -1 -}}
{{- $doc := fromYaml . -}}
{{- if and $doc (eq (get $doc "kind") $kind) (eq (get (get $doc "metadata") "name") $name) -}}
{{- toJson $doc -}}
{{- end -}}
{{- end -}}
{{- end -}}
