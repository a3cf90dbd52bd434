from django.urls import URLPattern, URLResolver

# The push capabilities add their routes here: /pushrules, /pushers, /notifications.
urlpatterns: list[URLPattern | URLResolver] = []
