# The seed's three-node layout: mcp (MCP + user + event services), model (gateway), agent (chat API) behind one ALB.
# Files: network.tf, security.tf, alb.tf (routing from ../routing.json), compute.tf, storage.tf, secrets.tf,
# monitoring.tf. docs/deploy.md walks through an apply from an empty account.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
# Two zones by name (every region has "a" and "b"), so the layout never changes when AWS adds a zone.
data "aws_availability_zones" "available" {
  state = "available"
  filter {
    name   = "zone-name"
    values = ["${var.region}a", "${var.region}b"]
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = data.aws_availability_zones.available.names

  # The port each role listens on (isa.roles.DEFAULT_PORTS).
  role_ports = { mcp = 8081, model = 8082, agent = 8080 }

  # One entry per instance: "mcp-1", "model-1", ... Raising nodes[role].count adds instances to the role's target group.
  instances = merge([
    for role, node in var.nodes : {
      for i in range(node.count) : "${role}-${i + 1}" => {
        role          = role
        index         = i
        instance_type = node.instance_type
        volume_gb     = node.volume_gb
      }
    }
  ]...)

  internal_zone = "${var.name}.internal"
}
