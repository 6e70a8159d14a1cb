# The nodes: Debian 12 (the platform the test suite and the nginx rehearsal run on), one role each, bootstrapped by
# ../bootstrap.sh. No key pair and no public address: SSM Session Manager for shells, SSM Run Command for upgrades.

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian's official AWS account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

resource "aws_instance" "node" {
  for_each               = local.instances
  ami                    = data.aws_ami.debian.id
  instance_type          = each.value.instance_type
  subnet_id              = aws_subnet.private[each.value.index % 2].id
  vpc_security_group_ids = [aws_security_group.node.id]
  iam_instance_profile   = aws_iam_instance_profile.role[each.value.role].name
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = each.value.volume_gb
    encrypted             = true
    delete_on_termination = true
  }

  # No secrets here: the units fetch them from Secrets Manager at start (../bin/isa_secrets_env.py).
  user_data = templatefile("${path.module}/../bootstrap.sh", {
    role            = each.value.role
    region          = var.region
    isa_version     = var.isa_version
    releases_bucket = module.releases_bucket.id
    log_group       = aws_cloudwatch_log_group.app.name
    common_env = templatefile("${path.module}/../env/common.env", {
      name   = var.name
      region = var.region
    })
    role_env = templatefile("${path.module}/../env/role.env", {
      role = each.value.role
    })
    node_settings = templatefile("${path.module}/../env/settings.toml", {
      public_hostname = var.public_hostname
      internal_zone   = local.internal_zone
      drain_seconds   = var.drain_seconds
      mcp_stateless   = var.nodes["mcp"].count > 1
      files_bucket    = module.files_bucket.id
      region          = var.region
    })
  })
  # Upgrades go through `isa-release` over SSM (docs/deploy.md); a changed template applies to new instances only.
  user_data_replace_on_change = false

  tags = {
    Name       = "${var.name}-${each.key}"
    "isa:role" = each.value.role
  }

  lifecycle {
    ignore_changes = [ami]
  }
}

# One instance role per node role, so each node gets only what its role uses.
resource "aws_iam_role" "node" {
  for_each = var.nodes
  name     = "${var.name}-${each.key}-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_instance_profile" "role" {
  for_each = var.nodes
  name     = "${var.name}-${each.key}-node"
  role     = aws_iam_role.node[each.key].name
}

# Session Manager and Run Command (the managed policy AWS maintains for exactly that).
resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = var.nodes
  role       = aws_iam_role.node[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "node" {
  for_each = var.nodes

  # Secrets: the shared one and the role's own, decrypted through Secrets Manager only.
  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.node["common"].arn, aws_secretsmanager_secret.node[each.key].arn]
  }
  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }

  # Releases: read-only, for the first boot and for upgrades.
  statement {
    sid       = "ReadReleases"
    actions   = ["s3:GetObject"]
    resources = ["${module.releases_bucket.arn}/releases/*"]
  }

  # Logs and metrics through the CloudWatch agent.
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.app.arn}:*"]
  }
  statement {
    sid       = "PutMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource-level permissions; the namespace condition narrows it.
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["CWAgent"]
    }
  }

  # User files: only the mcp role (the user service) touches the bucket, and only under users/.
  dynamic "statement" {
    for_each = each.key == "mcp" ? [1] : []
    content {
      sid = "UserFiles"
      actions = [
        "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
      ]
      resources = ["${module.files_bucket.arn}/users/*"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "mcp" ? [1] : []
    content {
      sid       = "ListUserFiles"
      actions   = ["s3:ListBucket"]
      resources = [module.files_bucket.arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["users/*"]
      }
    }
  }
}

resource "aws_iam_role_policy" "node" {
  for_each = var.nodes
  name     = "${var.name}-${each.key}"
  role     = aws_iam_role.node[each.key].id
  policy   = data.aws_iam_policy_document.node[each.key].json
}
