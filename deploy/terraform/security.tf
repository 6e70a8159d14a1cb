# Only the ALB reaches the role ports; the nodes reach each other on them; nothing reaches port 22 (there is no SSH:
# operators use SSM Session Manager, which needs no inbound rule).

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "isa ALB: HTTPS from the internet, HTTP only to redirect"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "node" {
  name        = "${var.name}-node"
  description = "isa nodes: role ports from the ALB and from each other"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers with a 301 to HTTPS (alb.tf, listener "http"); no route is served on it.
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, redirected to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_nodes" {
  security_group_id            = aws_security_group.alb.id
  description                  = "ALB to the role ports (8080 agent, 8081 mcp, 8082 model)"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_ingress_rule" "node_from_alb" {
  security_group_id            = aws_security_group.node.id
  description                  = "Role ports from the ALB (traffic and health checks)"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "node_from_node" {
  security_group_id            = aws_security_group.node.id
  description                  = "Role ports between nodes (agent to model and mcp, events to agent)"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "node_to_node" {
  security_group_id            = aws_security_group.node.id
  description                  = "Role ports between nodes"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.node.id
}

# Outbound through the NAT gateway: HTTPS (model providers, Supabase API, AWS APIs, PyPI, web tools), HTTP (Debian
# mirrors, web tools) and Postgres (Supabase direct 5432 and pooler 6543).
resource "aws_vpc_security_group_egress_rule" "node_out" {
  for_each          = { https = 443, http = 80, postgres = 5432, pooler = 6543 }
  security_group_id = aws_security_group.node.id
  description       = "Outbound ${each.key}"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
  cidr_ipv4         = "0.0.0.0/0"
}
