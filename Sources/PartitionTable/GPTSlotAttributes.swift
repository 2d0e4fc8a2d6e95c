/// The A/B slot fields that ChromeOS (vboot, `cgpt`) and Flatcar (GRUB's `gptprio` module,
/// update_engine) keep in the type-specific half of a GPT entry's attribute bits: priority in
/// bits 48-51, tries remaining in bits 52-55, successful in bit 56. Other GPT users leave these
/// bits zero; a table made by such a tool reads as no slot attributes at all.
public struct GPTSlotAttributes: Sendable, Equatable, Codable, CustomStringConvertible {
    /// 0-15; 0 means "never boot this slot".
    public var priority: Int
    /// 0-15: boots left before a slot that has not been marked successful is given up.
    public var tries: Int
    /// The slot booted and was marked good.
    public var successful: Bool

    public init(priority: Int, tries: Int, successful: Bool) {
        self.priority = priority
        self.tries = tries
        self.successful = successful
    }

    /// Decodes bits 48-56 of a GPT entry's attributes; nil when all of them are zero.
    public init?(attributes: UInt64) {
        guard (attributes >> 48) & 0x1FF != 0 else { return nil }
        priority = Int((attributes >> 48) & 0xF)
        tries = Int((attributes >> 52) & 0xF)
        successful = (attributes >> 56) & 1 == 1
    }

    /// Whether `gptprio.next` / vboot would boot this slot: a priority above 0 and either
    /// marked successful or with tries left.
    public var isBootable: Bool { priority > 0 && (successful || tries > 0) }

    /// The bootable slots in the order `gptprio.next` / vboot tries them: highest priority
    /// first, equal priorities in table order (the order of `slots`).
    public static func bootOrder<T>(_ slots: [(T, GPTSlotAttributes)]) -> [(T, GPTSlotAttributes)] {
        slots.enumerated().filter { $0.element.1.isBootable }
            .sorted { ($0.element.1.priority, -$0.offset) > ($1.element.1.priority, -$1.offset) }
            .map(\.element)
    }

    /// "priority=2 tries=1 successful=0", as `cgpt show` names the fields.
    public var description: String { "priority=\(priority) tries=\(tries) successful=\(successful ? 1 : 0)" }
}

extension Partition {
    /// The ChromeOS/Flatcar slot fields of a GPT entry, nil on MBR or when the bits are unset.
    public var slotAttributes: GPTSlotAttributes? { attributes.flatMap(GPTSlotAttributes.init(attributes:)) }
}
