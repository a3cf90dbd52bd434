"""Account events other apps react to (rooms leaves rooms, updates member events).

accounts never imports the apps that listen, so the dependency points one way.
"""

from django.dispatch import Signal

# Sent inside the deactivation transaction, with ``user_id``.
user_deactivated = Signal()
# Sent after a profile field changed, with ``user_id`` and ``key``.
profile_changed = Signal()
# Sent inside the transaction that renamed a device, with ``user_id`` and ``device_id``.
# (Devices created or deleted: Django's post_save/post_delete on Device.)
device_renamed = Signal()
