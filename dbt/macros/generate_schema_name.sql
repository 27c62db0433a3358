{#- Use the configured schema name as is (staging, marts, seeds) instead of dbt's
    "<target schema>_<custom schema>", so the views and notebooks read stable names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
