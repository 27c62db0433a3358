{#- The shared metric names, in one place for every model. -#}
{% macro metric_names() -%}
    {{ return(['impressions', 'likes', 'reposts', 'replies', 'quotes', 'bookmarks',
               'profile_clicks', 'follows', 'negative_feedback', 'reports']) }}
{%- endmacro %}

{#- Weighted engagements: sum of metric * weight over the reward_weights seed, pivoted in
    a CTE named `weights` with one column `w_<metric>` per weighted metric. -#}
{% macro reward_weight_columns() -%}
    {%- for m in ['replies', 'quotes', 'profile_clicks', 'reposts', 'likes', 'bookmarks',
                  'negative_feedback', 'reports'] %}
    coalesce(max(case when metric = '{{ m }}' then weight end), 0) as w_{{ m }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{% macro weighted_engagements(rel) -%}
    ({%- for m in ['replies', 'quotes', 'profile_clicks', 'reposts', 'likes', 'bookmarks',
                    'negative_feedback', 'reports'] -%}
        weights.w_{{ m }} * {{ rel }}.{{ m }}{{ " + " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}
