{#- Every row's column is at most another column (e.g. engagements never above impressions). -#}
{% test not_greater_than(model, column_name, other) %}
select * from {{ model }} where {{ column_name }} > {{ other }}
{% endtest %}
