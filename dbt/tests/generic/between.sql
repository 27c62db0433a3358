{#- Every non-null value lies in [low, high] (e.g. a probability). -#}
{% test between(model, column_name, low, high) %}
select * from {{ model }} where {{ column_name }} < {{ low }} or {{ column_name }} > {{ high }}
{% endtest %}
