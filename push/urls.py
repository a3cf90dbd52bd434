from django.urls import URLPattern, URLResolver, re_path

from push.api import notifications, pushers, rules

# Old clients still use /r0/ for push rules and pushers; both prefixes answer.
C = r"^_matrix/client/(?:r0|v3)/"
RULE = C + r"pushrules/global/(?P<kind>[^/]+)/(?P<rule_id>[^/]+)"

# The push capabilities add their routes here: /pushrules, /pushers, /notifications.
# The spec's paths end in a slash (/pushrules/, /pushrules/global/); without it they are
# no endpoint: 404 M_UNRECOGNIZED, as the spec answers unknown endpoints (Synapse: 404
# for /pushrules, 400 for /pushrules/global and other malformed paths).
urlpatterns: list[URLPattern | URLResolver] = [
    re_path(C + r"pushrules/$", rules.PushRulesView.as_view()),
    re_path(C + r"pushrules/global/$", rules.GlobalPushRulesView.as_view()),
    # /pushrules/global/{kind}/: the spec's {ruleId} left empty. GET lists the rules of
    # the kind (as Synapse does); PUT refuses the empty rule ID (400).
    re_path(C + r"pushrules/global/(?P<kind>[^/]+)/$", rules.PushRulesOfKindView.as_view()),
    re_path(RULE + r"$", rules.PushRuleView.as_view()),
    re_path(RULE + r"/enabled$", rules.PushRuleEnabledView.as_view()),
    re_path(RULE + r"/actions$", rules.PushRuleActionsView.as_view()),
    re_path(C + r"notifications$", notifications.NotificationsView.as_view()),
    re_path(C + r"pushers$", pushers.PushersView.as_view()),
    re_path(C + r"pushers/set$", pushers.SetPusherView.as_view()),
]
