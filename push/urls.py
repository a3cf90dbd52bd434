from django.urls import URLPattern, URLResolver, re_path

from push.api import notifications, pushers, rules

# Old clients still use /r0/ for push rules and pushers; both prefixes answer.
C = r"^_matrix/client/(?:r0|v3)/"
RULE = C + r"pushrules/global/(?P<kind>[^/]+)/(?P<rule_id>[^/]+)"

# The push capabilities add their routes here: /pushrules, /pushers, /notifications.
urlpatterns: list[URLPattern | URLResolver] = [
    re_path(C + r"pushrules/?$", rules.PushRulesView.as_view()),
    re_path(C + r"pushrules/global/?$", rules.GlobalPushRulesView.as_view()),
    re_path(RULE + r"$", rules.PushRuleView.as_view()),
    re_path(RULE + r"/enabled$", rules.PushRuleEnabledView.as_view()),
    re_path(RULE + r"/actions$", rules.PushRuleActionsView.as_view()),
    re_path(C + r"notifications$", notifications.NotificationsView.as_view()),
    re_path(C + r"pushers$", pushers.PushersView.as_view()),
    re_path(C + r"pushers/set$", pushers.SetPusherView.as_view()),
]
