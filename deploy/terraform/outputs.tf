output "alb_dns_name" {
  description = "Point public_hostname at this (CNAME, or a Route 53 alias)."
  value       = aws_lb.main.dns_name
}

output "files_bucket" {
  description = "User files (keys under users/)."
  value       = module.files_bucket.id
}

output "releases_bucket" {
  description = "Upload releases to s3://<this>/releases/<version>/ (docs/deploy.md)."
  value       = module.releases_bucket.id
}

output "log_bucket" {
  value = aws_s3_bucket.logs.id
}

output "instance_ids" {
  description = "Instance id per node (role-index); `aws ssm start-session --target <id>` opens a shell."
  value       = { for key, instance in aws_instance.node : key => instance.id }
}

output "secret_names" {
  description = "Put each one's value as a JSON object of environment variables (docs/deploy.md)."
  value       = { for key, secret in aws_secretsmanager_secret.node : key => secret.name }
}

output "alarm_topic_arn" {
  value = aws_sns_topic.alarms.arn
}

output "internal_urls" {
  description = "Where the nodes reach each other inside the VPC."
  value       = { for role, port in local.role_ports : role => "http://${role}.${local.internal_zone}:${port}" }
}
