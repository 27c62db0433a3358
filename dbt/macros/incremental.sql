{#- Helpers of the incremental marts. Values are read before the model's query runs and written
    into it as literals: DuckDB skips whole row groups on a literal bound (min/max per group),
    which a subquery bound does not allow. That is what makes a new day cost a day. -#}

{#- A timestamp (or none) from a one-value query, as a SQL literal. -#}
{% macro timestamp_literal(sql, default) -%}
    {%- set value = none -%}
    {%- if execute -%}
        {%- set result = run_query(sql) -%}
        {%- if result.rows | length > 0 -%}{%- set value = result.columns[0].values()[0] -%}{%- endif -%}
    {%- endif -%}
    {%- if value is none -%}{{ default }}{%- else -%}'{{ value }}'::timestamptz{%- endif -%}
{%- endmacro %}

{#- The newest `_loaded_at` this incremental model holds ('-infinity' on a first or full build,
    or when the table predates the column, so that everything counts as new). -#}
{% macro loaded_watermark() -%}
    {%- if execute and is_incremental()
          and '_loaded_at' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) -%}
        {{ timestamp_literal("select max(_loaded_at)::varchar from " ~ this, "'-infinity'::timestamptz") }}
    {%- else -%}'-infinity'::timestamptz{%- endif -%}
{%- endmacro %}
