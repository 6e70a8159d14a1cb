# User files (keys users/{user_id}/files/{YYYY}/{MM}/...), release artifacts, and the log bucket that receives the
# ALB's access logs and both buckets' S3 server access logs. Names carry the account id and region (unique, and
# nothing account-specific is committed).

locals {
  bucket_suffix = "${local.account_id}-${var.region}"
}

module "files_bucket" {
  source          = "./modules/private_bucket"
  bucket          = "${var.name}-files-${local.bucket_suffix}"
  log_bucket      = aws_s3_bucket.logs.id
  noncurrent_days = var.files_noncurrent_days
}

module "releases_bucket" {
  source          = "./modules/private_bucket"
  bucket          = "${var.name}-releases-${local.bucket_suffix}"
  log_bucket      = aws_s3_bucket.logs.id
  noncurrent_days = 90
}

# Request metrics for the S3 error-rate alarm (monitoring.tf).
resource "aws_s3_bucket_metric" "files" {
  bucket = module.files_bucket.id
  name   = "EntireBucket"
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Logs are not replicated across regions; losing them with the region is acceptable.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log-bucket events.
  #checkov:skip=CKV_AWS_145:ALB access-log and S3 server-access-log delivery both require SSE-S3 (AES256) on the target bucket.
  bucket = "${var.name}-logs-${local.bucket_suffix}"
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}

    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_elb_service_account" "main" {}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Regions opened before August 2022 deliver ALB logs as the region's ELB account, newer ones as the service.
        Sid       = "AlbAccessLogs"
        Effect    = "Allow"
        Principal = { AWS = data.aws_elb_service_account.main.arn, Service = "logdelivery.elasticloadbalancing.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"
      },
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3/*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.logs]
}
