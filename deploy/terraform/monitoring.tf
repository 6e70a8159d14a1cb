# Logs and the seed's alarms: CPU > 80 %, memory > 85 % (CloudWatch agent), failed health checks, 5xx rate > 5 %,
# S3 error rate > 1 %. Every alarm notifies the SNS topic (subscribe alarm_email or anything else to it).

resource "aws_cloudwatch_log_group" "app" {
  name              = "/${var.name}/app"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/${var.name}/vpc-flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

# WAF requires the "aws-waf-logs-" prefix.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "cpu" {
  for_each            = local.instances
  alarm_name          = "${var.name}-${each.key}-cpu"
  alarm_description   = "CPU above 80 % for 10 minutes on ${each.key}"
  namespace           = "AWS/EC2"
  metric_name         = "CPUUtilization"
  dimensions          = { InstanceId = aws_instance.node[each.key].id }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = 80
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# mem_used_percent comes from the CloudWatch agent the bootstrap installs (append_dimensions: InstanceId).
resource "aws_cloudwatch_metric_alarm" "memory" {
  for_each            = local.instances
  alarm_name          = "${var.name}-${each.key}-memory"
  alarm_description   = "Memory above 85 % for 10 minutes on ${each.key}"
  namespace           = "CWAgent"
  metric_name         = "mem_used_percent"
  dimensions          = { InstanceId = aws_instance.node[each.key].id }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = 85
  treat_missing_data  = "breaching" # no data means the agent (or the node) is down
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "unhealthy" {
  for_each            = var.nodes
  alarm_name          = "${var.name}-${each.key}-unhealthy-targets"
  alarm_description   = "A ${each.key} node fails its /health/ready check"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { TargetGroup = aws_lb_target_group.role[each.key].arn_suffix, LoadBalancer = aws_lb.main.arn_suffix }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "http_5xx_rate" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than 5 % of requests answered 5xx (by a node or by the ALB) over 5 minutes"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 5
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "100 * (FILL(target, 0) + FILL(elb, 0)) / requests"
    label       = "5xx rate (%)"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { target = "HTTPCode_Target_5XX_Count", elb = "HTTPCode_ELB_5XX_Count", requests = "RequestCount" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = metric_query.value
        dimensions  = { LoadBalancer = aws_lb.main.arn_suffix }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "s3_error_rate" {
  alarm_name          = "${var.name}-files-s3-error-rate"
  alarm_description   = "More than 1 % of requests to the user-files bucket failed with 5xx over 5 minutes"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "100 * FILL(errors, 0) / requests"
    label       = "S3 5xx rate (%)"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { errors = "5xxErrors", requests = "AllRequests" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/S3"
        metric_name = metric_query.value
        dimensions  = { BucketName = module.files_bucket.id, FilterId = aws_s3_bucket_metric.files.name }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}
