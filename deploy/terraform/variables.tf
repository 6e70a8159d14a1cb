variable "region" {
  description = "AWS region for every resource."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix for resource names, the Secrets Manager secret names (<name>/common, <name>/<role>) and the private DNS zone (<name>.internal)."
  type        = string
  default     = "isa"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name: 2-21 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment" {
  description = "Tag value that tells this deployment apart (production, staging...)."
  type        = string
  default     = "production"
}

variable "public_hostname" {
  description = "The DNS name clients use (a CNAME or alias to the ALB). The nodes answer only to it and to their internal names (Host allow list)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for public_hostname, in this region (HTTPS listener)."
  type        = string
}

variable "isa_version" {
  description = "The release installed at first boot: s3://<releases bucket>/releases/<version>/ holds the wheel and the deploy bundle (docs/deploy.md)."
  type        = string
}

variable "nodes" {
  description = "Instances per role. Scale out by raising count: every instance of a role joins that role's target group."
  type = map(object({
    instance_type = string
    count         = number
    volume_gb     = number
  }))
  default = {
    mcp   = { instance_type = "t3.medium", count = 1, volume_gb = 30 }
    model = { instance_type = "t3.small", count = 1, volume_gb = 25 }
    agent = { instance_type = "t3.small", count = 1, volume_gb = 20 }
  }

  validation {
    condition     = length(setsubtract(["mcp", "model", "agent"], keys(var.nodes))) == 0 && alltrue([for n in values(var.nodes) : n.count >= 1])
    error_message = "nodes must define mcp, model and agent, each with count >= 1."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the dedicated VPC (two public subnets for the ALB and NAT, two private ones for the nodes)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds. Must stay below the nodes' keep-alive (server.keep_alive_seconds, 75) and above the SSE heartbeat (agent.heartbeat_seconds, 15); tests/deploy checks both."
  type        = number
  default     = 60
}

variable "health_check" {
  description = "Target-group health check on /health/ready. timeout < interval, and timeout > the node's own ready-check bound (health.ready_timeout_seconds, 2 s)."
  type = object({
    interval            = number
    timeout             = number
    healthy_threshold   = number
    unhealthy_threshold = number
  })
  default = {
    interval            = 5
    timeout             = 4
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

variable "drain_seconds" {
  description = "After SIGTERM a node answers readiness 503 but keeps serving this long (server.drain_seconds on the nodes). At least health_check.interval x unhealthy_threshold, so the ALB stops sending first."
  type        = number
  default     = 15
}

variable "deregistration_delay" {
  description = "Seconds the ALB lets in-flight requests finish on a target leaving its group (>= server.graceful_timeout_seconds, 20)."
  type        = number
  default     = 30
}

variable "alb_deletion_protection" {
  description = "Protect the ALB from `terraform destroy`; turn off deliberately before tearing down."
  type        = bool
  default     = true
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes from one IP address before the WAF blocks it."
  type        = number
  default     = 3000
}

variable "files_noncurrent_days" {
  description = "Days an overwritten or deleted user file stays restorable (S3 noncurrent version)."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups and of the log bucket's objects."
  type        = number
  default     = 365
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; empty: subscribe someone later."
  type        = string
  default     = ""
}
