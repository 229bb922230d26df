"""Operations as code: the Grafana dashboard (built with grafana-foundation-sdk, exported to
the chart) and PromQL helpers the checks use. The alert rules are a plain Prometheus rules file
in the chart (helm/reconciler/files/rules/), checked by promtool."""
