#!/bin/bash
# First boot of one isa node: EC2 user data, rendered by Terraform's templatefile() (deploy/terraform/compute.tf):
# dollar-brace references are filled there, the shell's own variables are written $NAME. It installs the system
# packages, the SSM and CloudWatch agents and the release, writes the env files and enables the units.
# No secrets here: each unit fetches its own from Secrets Manager when it starts (bin/isa_secrets_env.py).
set -euo pipefail
exec > >(tee -a /var/log/isa-bootstrap.log) 2>&1

ROLE='${role}'
REGION='${region}'
VERSION='${isa_version}'
RELEASES_BUCKET='${releases_bucket}'

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends python3-venv awscli curl ca-certificates logrotate
if [ "$ROLE" = mcp ]; then
	# The browser tools: Playwright drives Debian's Chromium (no browser download at run time).
	apt-get install -y -q --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji
fi

# Debian's AMIs carry neither the SSM agent (Session Manager, Run Command) nor the CloudWatch agent; AWS publishes
# both per region.
curl -fsSL -o /tmp/amazon-ssm-agent.deb \
	"https://s3.$REGION.amazonaws.com/amazon-ssm-$REGION/latest/debian_amd64/amazon-ssm-agent.deb"
curl -fsSL -o /tmp/amazon-cloudwatch-agent.deb \
	"https://amazoncloudwatch-agent-$REGION.s3.$REGION.amazonaws.com/debian/amd64/latest/amazon-cloudwatch-agent.deb"
dpkg -i /tmp/amazon-ssm-agent.deb /tmp/amazon-cloudwatch-agent.deb
systemctl enable --now amazon-ssm-agent

# The dedicated, unprivileged user every isa unit runs as.
id isa >/dev/null 2>&1 || useradd --system --home-dir /var/lib/isa --no-create-home --shell /usr/sbin/nologin isa
install -d -m 0755 /opt/isa /opt/isa/bin /opt/isa/releases
install -d -m 0750 -o root -g isa /etc/isa

# Environment and settings (non-secret; rendered from deploy/env/ by Terraform).
cat >/etc/isa/common.env <<'ISA_EOF'
${common_env}
ISA_EOF
cat >"/etc/isa/$ROLE.env" <<'ISA_EOF'
${role_env}
ISA_EOF
cat >/etc/isa/settings.toml <<'ISA_EOF'
${node_settings}
ISA_EOF
cat >/etc/isa/release.env <<ISA_EOF
ISA_ROLE=$ROLE
ISA_RELEASES_BUCKET=$RELEASES_BUCKET
AWS_REGION=$REGION
ISA_EOF
chown root:isa /etc/isa/*
chmod 0640 /etc/isa/*

# Memory for the > 85 % alarm and the units' logs, through the CloudWatch agent.
cat >/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<'ISA_EOF'
{
  "agent": {"metrics_collection_interval": 60, "run_as_user": "root"},
  "metrics": {
    "namespace": "CWAgent",
    "append_dimensions": {"InstanceId": "$${aws:InstanceId}"},
    "metrics_collected": {
      "mem": {"measurement": ["mem_used_percent"]},
      "disk": {"measurement": ["used_percent"], "resources": ["/"]}
    }
  },
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          {"file_path": "/var/log/isa/${role}.log", "log_group_name": "${log_group}", "log_stream_name": "{instance_id}/${role}"},
          {"file_path": "/var/log/isa/migrate.log", "log_group_name": "${log_group}", "log_stream_name": "{instance_id}/migrate"},
          {"file_path": "/var/log/isa/worker.log", "log_group_name": "${log_group}", "log_stream_name": "{instance_id}/worker"},
          {"file_path": "/var/log/isa-bootstrap.log", "log_group_name": "${log_group}", "log_stream_name": "{instance_id}/bootstrap"}
        ]
      }
    }
  }
}
ISA_EOF
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
	-c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json

cat >/etc/logrotate.d/isa <<'ISA_EOF'
/var/log/isa/*.log {
	daily
	rotate 7
	compress
	delaycompress
	missingok
	notifempty
	copytruncate
}
ISA_EOF

# The release: isa-release comes in the release's own deploy bundle, then installs the wheel into a venv and the
# units (bin/isa-release). On the first boot it does not wait for readiness: the agent is ready only once the
# model and mcp nodes are, and the ALB health checks keep it out until then.
aws s3 cp --only-show-errors "s3://$RELEASES_BUCKET/releases/$VERSION/isa-deploy-$VERSION.tar.gz" /tmp/isa-deploy.tar.gz
mkdir -p /tmp/isa-deploy
tar -xzf /tmp/isa-deploy.tar.gz -C /tmp/isa-deploy
install -m 0755 /tmp/isa-deploy/bin/isa-release /opt/isa/bin/isa-release
/opt/isa/bin/isa-release install "$VERSION"
systemctl enable "isa@$ROLE.service"
ISA_RELEASE_WAIT=0 /opt/isa/bin/isa-release activate "$VERSION"

# The background-task worker exists from the release that adds `isa worker` (the event service) on.
if [ "$ROLE" = mcp ] && /opt/isa/venv/bin/isa worker --help >/dev/null 2>&1; then
	systemctl enable --now isa-worker.service
fi
echo "isa bootstrap: $ROLE node runs $VERSION"
