#!/bin/sh
# The workers' account from the compose secret (created on the node's first boot, with full rights on the
# default vhost: `twitchwatch broker setup` declares exchanges and queues with it), then the node.
set -eu
umask 077
mkdir -p /etc/rabbitmq/conf.d
{
    echo "default_user = twitchwatch-worker"
    echo "default_pass = $(cat /run/secrets/rabbitmq_worker_password)"
} >/etc/rabbitmq/conf.d/90-twitchwatch-account.conf
chown rabbitmq /etc/rabbitmq/conf.d/90-twitchwatch-account.conf
exec docker-entrypoint.sh rabbitmq-server
