# Secrets live in Secrets Manager, never in user data, env files on disk or this repository. Terraform creates the
# empty secrets; an operator puts the values (docs/deploy.md). Each is a JSON object of environment variables:
#   <name>/common  every node  (ISA_DATABASE__URL, token secrets, ...)
#   <name>/<role>  that role   (model: provider API keys; mcp: Stripe, search keys; ...)
# At start each unit's ExecStartPre (../bin/isa_secrets_env.py) writes them to a 0600 file under /run/isa/.

resource "aws_kms_key" "main" {
  description             = "${var.name}: secrets, log groups and the alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Key administration and use stay with IAM policies in this account (the instance roles get Decrypt only).
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypt"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*" }
        }
      },
      {
        Sid       = "AlarmsPublishToTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.main.key_id
}

resource "aws_secretsmanager_secret" "node" {
  #checkov:skip=CKV2_AWS_57:The values are third-party API keys and a database URL that Secrets Manager cannot rotate by itself; docs/deploy.md describes rotating them by hand.
  for_each                = toset(["common", "mcp", "model", "agent"])
  name                    = "${var.name}/${each.key}"
  description             = "isa ${each.key}: a JSON object of environment variables"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}
