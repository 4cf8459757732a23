"""Chinese names of the contract's codes (labels, categories, statuses, roles), shown on every page."""

from __future__ import annotations

LABELS = {
    "demand": "诉求",
    "consult": "咨询",
    "clue": "问题线索",
    "banquet": "大操大办",
    "gambling": "赌博",
    "abuse": "辱骂",
    "spam": "广告",
    "notice": "通知",
    "feedback": "反馈",
    "chat": "闲聊",
}
CATEGORIES = {
    "water": "供水",
    "power": "供电",
    "road_traffic": "道路交通",
    "sanitation": "环境卫生",
    "safety_hazard": "安全隐患",
    "public_order": "社会治安",
    "land_housing": "土地房屋",
    "welfare": "民生保障",
    "village_affairs": "村务",
    "education_health": "教育医疗",
    "agriculture": "农业生产",
    "environment": "生态环境",
    "other": "其他",
}
KINDS = {"demand": "诉求", "consult": "咨询", "clue": "问题线索"}
STATUSES = {"open": "待受理", "accepted": "办理中", "resolved": "已办结", "closed": "已关闭"}
STAGES = {
    "new": "待受理",
    "in_progress": "办理中",
    "extension_requested": "延期待审批",
    "awaiting_photo": "待补照片",
    "awaiting_rating": "待评价",
    "rated": "已评价归档",
    "no_answer": "未评价归档",
    "merged": "已并入其他工单",
}
RATINGS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
LEVELS = {"village": "村级", "township": "镇级", "county": "县级"}
MEMBER_ROLES = {"villager": "村民", "party_member": "党员", "cadre": "村干部", "staff": "工作人员"}
STAFF_ROLES = {"admin": "管理员", "county_staff": "县纪委", "township_staff": "镇纪委", "cadre": "村干部"}
SEVERITIES = {"high": "高", "normal": "中", "low": "低"}
OCR_ERRORS = {
    "not_image": "文件不是图片",
    "corrupt": "图片文件已损坏或不完整",
    "too_large": "图片文件太大",
    "too_many_pixels": "图片像素过多（可能是恶意图片）",
    "timeout": "识别超时",
    "crashed": "识别程序出错",
    "out_of_memory": "识别所需内存过多",
    "no_file": "图片未能下载",
    "classify_failed": "文字已识别但分类失败，请联系技术人员",
}
VERDICTS = {"confirmed": "属实", "false_alarm": "误报", "follow_up": "需跟进", "note": "备注"}
EVENTS = {
    "opened": "受理登记",
    "merged": "合并反映",
    "accepted": "已受理",
    "progress": "办理进展",
    "resolved": "办结",
    "rated": "群众评价",
    "reopened": "重新办理",
    "escalated": "提级督办",
    "reminded": "到期提醒",
    "extended": "延期",
    "closed": "关闭",
    "transferred": "转办",
    "note": "备注",
    "photo": "上传照片",
    "photo_waived": "免补照片",
    "assigned": "分派",
    "extension_requested": "申请延期",
    "overdue": "逾期",
    "split": "拆分",
    "merged_into": "并入工单",
}
BROADCAST_KINDS = {"notice": "通知", "clarification": "澄清"}
OUTBOX_STATUSES = {
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "发送失败",
    "cancelled": "已取消",
}
VOICE_STATUSES = {
    "ok": "",
    "undecodable": "语音无法解码，原文件已保存",
    "missing": "语音文件没有收到",
}
TRANSCRIPT_SOURCES = {"staff": "人工转写", "machine": "机器识别"}
CARD_KINDS = {"link": "链接", "mini_program": "小程序", "file": "文件"}
MESSAGE_KINDS = {"image": "图片", "voice": "语音", "link": "链接", "file": "文件", "video": "视频", "other": "其他消息"}
AUDIT_ACTIONS = {
    "login": "登录",
    "login_attempt": "登录中",
    "login_failed": "登录失败",
    "login_throttled": "登录受限（失败次数过多）",
    "login_disabled": "已停用账号尝试登录",
    "logout": "退出登录",
    "view_ticket": "查看工单",
    "view_flag": "查看网巡条目",
    "flag_verdict": "网巡研判",
    "patrol_mark": "标记已巡查",
    "label_correction": "纠正标签",
    "label_missed": "标记漏报",
    "model_retrain": "重新训练模型",
    "rule_shadow": "切换规则试运行",
    "rule_dry_run": "规则试算",
    "rule_edit_dry_run": "规则修改试算",
    "rule_edit": "修改规则",
    "rule_add": "新增规则",
    "rule_rollback": "恢复规则版本",
    "rerun_kept_raw": "重新处理失败消息",
    "transcribe_voice": "转写语音",
    "export_tickets": "导出工单台账",
    "export_flags": "导出网巡台账",
    "broadcast_notice": "群发通知",
    "broadcast_clarification": "发布澄清",
    "broadcast_cancel": "取消定时群发",
    "user_add": "新增账号",
    "user_edit": "修改账号",
    "user_disable": "停用账号",
    "user_enable": "启用账号",
    "user_password_reset": "重置密码",
    "password_change": "修改本人密码",
    "roster_import": "导入花名册",
    "roster_export": "导出花名册",
    "roster_assign": "登记群成员身份",
    "ticket_bulk": "批量处理工单",
}
TICKET_FORM_NAMES = {
    "accept": "受理",
    "progress": "办理进展",
    "resolve": "办结",
    "waive_photo": "免补照片",
    "photo": "上传照片",
    "close": "关闭",
    "reopen": "重新办理",
    "transfer": "转办",
    "escalate": "提级督办",
    "extend": "批准延期",
    "note": "备注",
    "split": "拆分",
    "merge": "合并",
    "open": "立案（从消息）",
}


def audit_action(code: str) -> str:
    """The Chinese name of an audit action; actions on tickets are ``ticket_<form>`` (``_refused`` when the
    workflow said no). An unknown code reads as 其他操作, never as the raw key."""
    if code in AUDIT_ACTIONS:
        return AUDIT_ACTIONS[code]
    if code.startswith("ticket_"):
        form = code.removeprefix("ticket_")
        refused = form.endswith("_refused")
        form = form.removesuffix("_refused")
        if form in TICKET_FORM_NAMES:
            return f"工单{TICKET_FORM_NAMES[form]}" + ("（被拒绝）" if refused else "")
    return "其他操作"


AUDIT_TARGETS = {
    "ticket": "工单 #",
    "flag": "网巡 #",
    "message": "消息 #",
    "broadcast": "群发 #",
    "member": "成员 #",
    "user": "账号 ",
    "rule": "规则 ",
    "rule_version": "规则版本 #",
}
AUDIT_TARGET_WORDS = {"roster": "花名册", "model": "模型", "transfer": "转办", "escalate": "提级督办", "close": "关闭"}


def audit_target(target: str | None) -> str:
    """What an audit row is about, for people: ``ticket:12`` reads 工单 #12, ``user:zhang`` 账号 zhang."""
    if not target:
        return ""
    kind, sep, rest = target.partition(":")
    if sep and kind == "rule":
        return f"{rule_group(rest)}规则"  # by what it finds, never by its identifier
    if sep and kind in AUDIT_TARGETS:
        return AUDIT_TARGETS[kind] + rest
    return AUDIT_TARGET_WORDS.get(target, target)


RULE_VERSION_ACTIONS = {"edit": "修改", "add": "新增规则", "rollback": "恢复旧版本"}


def rule_group(rule_id: str) -> str:
    """A rule shown by what it finds (its label or category), never by its identifier."""
    parts = rule_id.split(".")
    prefix = parts[1] if parts[0] == "cat" and len(parts) > 2 else parts[0]
    return LABELS.get(prefix) or CATEGORIES.get(prefix) or "其他"
