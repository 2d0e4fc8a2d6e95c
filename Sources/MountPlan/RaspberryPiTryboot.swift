/// The Raspberry Pi firmware's `autoboot.txt` on the first FAT partition (config.txt syntax:
/// `[filter]` sections, `key=value` lines, `#` comments; lines before a section are `[all]`).
public struct RaspberryPiAutoboot: Sendable, Equatable {
    /// `[all] boot_partition=`: the partition a normal boot loads config.txt, the kernel and
    /// cmdline.txt from.
    public var bootPartition: Int?
    /// `[tryboot] boot_partition=`: used only for a trial boot (`reboot "0 tryboot"`).
    public var trybootPartition: Int?
    /// `[all] tryboot_a_b=1`: the [tryboot] section selects the partition of a trial boot.
    public var trybootAB: Bool
    /// Sections other than [all] and [tryboot] (board filters such as [pi4]), not applied.
    public var otherSections: [String]

    public static func parse(_ bytes: [UInt8]) -> RaspberryPiAutoboot {
        let (assignments, _) = UnitFile.parse(Array("[all]\n".utf8) + bytes.prefix(64 * 1024), file: "autoboot.txt")
        let unit = UnitFile(name: "autoboot.txt", path: "autoboot.txt", assignments: assignments)
        var others: [String] = []
        for a in assignments where a.section != "all" && a.section != "tryboot" && !others.contains(a.section) { others.append(a.section) }
        return RaspberryPiAutoboot(bootPartition: unit.value("all", "boot_partition").flatMap { Int($0) },
                                   trybootPartition: unit.value("tryboot", "boot_partition").flatMap { Int($0) },
                                   trybootAB: unit.value("all", "tryboot_a_b") == "1", otherSections: others)
    }
}

/// Raspberry Pi A/B by `autoboot.txt`: the `[all]` boot partition's `cmdline.txt` names the root.
/// Whether the next boot is a trial (`tryboot`) is a flag the firmware keeps in RAM, not on the
/// disk: the plan is that of a normal boot.
enum RaspberryPiTryboot {
    static func decide(_ context: SlotContext, _ found: inout SlotFindings) -> SlotDecision? {
        guard let file = context.state.autoboot else { return nil }
        let autoboot = RaspberryPiAutoboot.parse(Array(file.text.utf8))
        var facts = "Raspberry Pi firmware \(file.location): [all] tryboot_a_b=\(autoboot.trybootAB ? 1 : 0) boot_partition=\(autoboot.bootPartition.map(String.init) ?? "unset")"
        if let t = autoboot.trybootPartition {
            facts += " ([tryboot] boot_partition=\(t) applies only to a trial boot, a flag the firmware keeps in RAM, not on the disk: a normal boot is planned)"
        }
        if !autoboot.otherSections.isEmpty {
            facts += " (sections [\(autoboot.otherSections.joined(separator: "], ["))] are board filters, not applied)"
        }
        // Without boot_partition the firmware stays on the partition holding autoboot.txt.
        let boot = autoboot.bootPartition ?? file.partition
        if autoboot.bootPartition == nil { facts += " (no boot_partition: the firmware boots from \(context.name(boot)))" }
        guard let cmdline = context.state.cmdlines.first(where: { $0.partition == boot }) else {
            found.warnings.append("\(facts): \(context.name(boot)) has no cmdline.txt; the root is not known from it")
            return nil
        }
        guard let root = KernelCommandLine.value("root", in: cmdline.text) else {
            found.warnings.append("\(facts): \(cmdline.location) has no root=")
            return nil
        }
        guard let p = context.partition(root), context.isCandidate(p) else {
            found.warnings.append("\(facts): \(cmdline.location) root=\(root) does not name a partition holding a Linux root")
            return nil
        }
        return SlotDecision(convention: "Raspberry Pi autoboot.txt", partition: p, reason: "\(facts); \(cmdline.location): root=\(root)")
    }
}
