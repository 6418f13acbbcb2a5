"""User-facing texts of the inspections domain in English and Simplified Chinese."""

from __future__ import annotations

LANGUAGES = ("en", "zh-CN")

REASONS: dict[str, tuple[str, str]] = {
    # evidence flags
    "no_tag_scan": ("no tag scan", "未扫描标签"),
    "scan_other_site": ("the scan is of another site's tag", "扫描的是其他站点的标签"),
    "scan_other_user": ("the scan was made by someone else", "标签由他人扫描"),
    "scan_reused": ("the scan was already used for another visit", "该扫描已用于另一次巡检"),
    "scan_time_gap": ("the scan is far in time from the visit", "扫描时间与巡检时间相差过大"),
    "tag_uid_only": ("plain tag: presence claimed, not proven (UID only)",
                     "普通标签：仅有 UID，无法证明到场"),
    "tag_unknown_tag": ("unknown tag", "未登记的标签"),
    "tag_revoked": ("revoked tag", "标签已注销"),
    "tag_replayed": ("replayed tag message (copied scan)", "标签消息被重放（复制的扫描）"),
    "tag_bad_mac": ("tag authentication failed (possible clone)", "标签认证失败（可能被克隆）"),
    "tag_malformed": ("unreadable tag data", "标签数据无法解析"),
    "no_gps": ("no GPS fix", "无 GPS 定位"),
    "gps_inaccurate": ("GPS fix too inaccurate", "GPS 定位精度不足"),
    "gps_too_far": ("GPS fix too far from the site", "GPS 位置距站点过远"),
    "outside_window": ("visit outside the round's time window", "巡检时间不在计划时段内"),
    "value_out_of_range": ("checklist value out of range", "检查项数值超出范围"),
    "checklist_incomplete": ("checklist incomplete", "检查表未填写完整"),
    # anomalies
    "impossible_travel": ("two scans closer in time than the travel between the sites allows",
                          "两次扫描的时间间隔短于站点间所需的行程时间"),
    "cloned_tag_pattern": ("UID-only scans of different sites from one spot (cloned tags?)",
                           "在同一地点扫描了不同站点的普通标签（疑似克隆标签）"),
    "missing_gps": ("visit without a GPS fix", "巡检记录缺少 GPS 定位"),
    "missed_checkpoint": ("checkpoint missed: the round's window closed without a visit",
                          "漏检：计划时段结束仍未巡检该站点"),
    # compliance / report words
    "done": ("done", "已完成"),
    "late": ("late", "逾期完成"),
    "missed": ("missed", "漏检"),
    "pending": ("pending", "待巡检"),
    "verified": ("verified", "已验证"),
    "flagged": ("flagged", "存疑"),
}

VERDICTS: dict[str, tuple[str, str]] = {  # tag scan verdicts (docs/rfid.md)
    "verified": ("SUN verified", "SUN 验证通过"),
    "uid_only": ("UID only (plain tag)", "仅 UID（普通标签）"),
    "unknown_tag": ("unknown tag", "未登记标签"),
    "revoked": ("revoked tag", "已注销标签"),
    "replayed": ("replayed", "重放"),
    "bad_mac": ("authentication failed", "认证失败"),
    "malformed": ("unreadable", "无法解析"),
}

LABELS: dict[str, tuple[str, str]] = {
    "report_title": ("Inspection round report", "巡检报告"),
    "plan": ("Plan", "计划"),
    "window": ("Window", "时段"),
    "assignee": ("Assigned to", "执行人"),
    "site": ("Site", "站点"),
    "state": ("State", "状态"),
    "visit": ("Visit", "巡检"),
    "evidence": ("Evidence", "证据"),
    "technician": ("Technician", "巡检员"),
    "tag": ("Tag scan", "标签扫描"),
    "distance": ("Distance to site", "距站点距离"),
    "checklist": ("Checklist", "检查表"),
    "photos": ("Photos and signatures", "照片与签名"),
    "chain": ("Record hash", "记录哈希"),
    "not_uploaded": ("not uploaded yet", "尚未上传"),
    "generated": ("Generated", "生成时间"),
    "none": ("none", "无"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
}


def verdict(code: str, lang: str) -> str:
    pair = VERDICTS.get(code)
    if pair is None:
        return code
    return pair[1] if lang == "zh-CN" else pair[0]


def text(code: str, lang: str) -> str:
    pair = REASONS.get(code) or LABELS.get(code)
    if pair is None:
        return code
    return pair[1] if lang == "zh-CN" else pair[0]
