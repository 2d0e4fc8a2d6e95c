import DiskImage
import FileSystems

/// RAUC's `/etc/rauc/system.conf` (a GLib key file: `[section]`, `key=value`, `#` comments; read
/// with the unit-file parser, whose `\` continuation and `;` comments RAUC's files do not use).
public struct RAUCSystemConfig: Sendable, Equatable {
    /// One `[slot.CLASS.INDEX]` section.
    public struct Slot: Sendable, Equatable {
        /// "rootfs.0".
        public var name: String
        public var device: String?
        /// The name the bootloader knows the slot by ("A", "B", "system0").
        public var bootname: String?
        /// A child slot (an appfs of a rootfs) switches with its parent and has no bootname.
        public var parent: String?
    }

    /// `[system] bootloader=`: uboot, grub, barebox, efi, custom, noop.
    public var bootloader: String?
    /// `[system] statusfile=`: a path or `per-slot`.
    public var statusFile: String?
    /// `[system] data-directory=`: the central status file is `<dir>/central.raucs`.
    public var dataDirectory: String?
    /// `[system] grubenv=` (default `/boot/grub/grubenv`).
    public var grubenv: String?
    public var slots: [Slot]

    public static func parse(_ bytes: [UInt8], file: String = "/etc/rauc/system.conf") -> RAUCSystemConfig {
        let unit = UnitFile(name: "system.conf", path: file, assignments: UnitFile.parse(bytes, file: file).assignments)
        var slots: [Slot] = []
        var seen: Set<String> = []
        for a in unit.assignments where a.section.hasPrefix("slot.") && !seen.contains(a.section) {
            seen.insert(a.section)
            slots.append(Slot(name: String(a.section.dropFirst(5)), device: unit.value(a.section, "device"),
                              bootname: unit.value(a.section, "bootname"), parent: unit.value(a.section, "parent")))
        }
        return RAUCSystemConfig(bootloader: unit.value("system", "bootloader"), statusFile: unit.value("system", "statusfile"),
                                dataDirectory: unit.value("system", "data-directory"), grubenv: unit.value("system", "grubenv"), slots: slots)
    }
}

/// RAUC's status file (`statusfile=` or the central `central.raucs`): per slot, what was
/// installed there (`bundle.version`, `installed.timestamp`, `status`).
public enum RAUCStatus {
    /// "rootfs.1: bundle.version=2.0, installed.timestamp=..., status=ok" per slot section.
    public static func summary(_ bytes: [UInt8], file: String) -> [String] {
        let unit = UnitFile(name: "status", path: file, assignments: UnitFile.parse(bytes, file: file).assignments)
        var sections: [String] = []
        for a in unit.assignments where a.section.hasPrefix("slot.") && !sections.contains(a.section) { sections.append(a.section) }
        return sections.prefix(32).map { section in
            let facts = ["bundle.version", "installed.timestamp", "status"].compactMap { key in unit.value(section, key).map { "\(key)=\($0)" } }
            return "\(section.dropFirst(5)): " + (facts.isEmpty ? "nothing installed" : facts.joined(separator: ", "))
        }
    }
}

/// RAUC: the slots of the first root candidate's system.conf, the bootloader backend's state
/// for them, else a `rauc.slot=` on a boot partition's kernel command line.
enum RAUCConvention {
    static func decide(_ context: SlotContext, _ found: inout SlotFindings) -> SlotDecision? {
        guard let (config, location, paths) = systemConfig(context, &found) else { return nil }
        let slots = config.slots.filter { $0.parent == nil && $0.bootname != nil }
        // The slot the bootloader names, or a child slot of it (HAOS: bootname on kernel.0, the
        // root in rootfs.0 with parent=kernel.0), whose device holds a root.
        func slot(_ bootname: String) -> Int? {
            guard let named = slots.first(where: { $0.bootname == bootname }) else { return nil }
            let family = [named] + config.slots.filter { $0.parent == named.name }
            return family.compactMap { $0.device.flatMap(context.partition) }.first(where: context.isCandidate)
        }
        let backend = config.bootloader ?? "unset"
        var reason = "RAUC (\(location): bootloader=\(backend); "
            + slots.map { "\($0.name) bootname=\($0.bootname ?? "") device=\($0.device ?? "unset")" }.joined(separator: ", ") + ")"
        var chosen: (Int, String)?
        switch backend {
        case "uboot":
            if let env = context.state.configuredUBoot ?? context.state.uboot {
                chosen = context.ubootOrder(env, slot: slot, &found) ?? exhausted(env, slot: slot, &found)
            } else {
                found.warnings.append("\(reason): no U-Boot environment found (no /etc/fw_env.config copy, raw partition or uboot.env file holds one)")
            }
        case "grub":
            // RAUC's reference grub.cfg boots a slot whose X_OK=1 and X_TRY=0 (it sets X_TRY=1 when it
            // tries one; `rauc status mark-good` resets it); HAOS's grub.cfg allows three tries.
            let tries = context.isHAOS ? 2 : 0
            reason += tries == 0 ? " (RAUC's grub.cfg rule: X_OK=1 and X_TRY=0)" : " (HAOS's grub.cfg rule: X_OK=1 and X_TRY<3)"
            let path = config.grubenv ?? "/boot/grub/grubenv"
            let file = paths.read(path, warnings: &found.warnings)
            if let file, let vars = GrubEnvironment.parse(file.bytes) {
                chosen = context.grubOrder(BootState.Environment(variables: vars, location: file.location), maximumTries: tries, slot: slot, &found)
            } else if let env = context.state.grub {
                chosen = context.grubOrder(env, maximumTries: tries, slot: slot, &found)
            } else {
                found.warnings.append("\(reason): grubenv \(path) not found on the disk")
            }
        case "barebox":
            found.warnings.append("\(reason): barebox-state is not read (its variables' layout is described by barebox's device tree, not on the disk in a form fwassemble reads)")
        case "efi":
            found.warnings.append("\(reason): the EFI boot entries RAUC switches (BootOrder, BootNext) are in the firmware's NVRAM, not on the disk")
        default:
            found.warnings.append("\(reason): the state of a \(backend) backend is known only to its own script")
        }
        if chosen == nil, let fromCmdline = commandLineSlot(context, slot: slot) { chosen = fromCmdline }
        guard let (partition, facts) = chosen else { return nil }
        reason += ": " + facts
        if let status = status(config, paths: paths, &found) { reason += "; " + status }
        return SlotDecision(convention: "RAUC", partition: partition, reason: reason)
    }

    /// Every slot of `BOOT_ORDER` out of tries: RAUC's example boot script sets every
    /// `BOOT_<x>_LEFT` back to 3, saves the environment and boots the first slot of the order
    /// (a warning: the device is in that recovery path).
    static func exhausted(_ env: BootState.Environment, slot: (String) -> Int?, _ found: inout SlotFindings) -> (Int, String)? {
        guard let order = env.variables["BOOT_ORDER"], let first = order.split(separator: " ").first.map(String.init),
              let p = slot(first) else { return nil }
        let facts = "\(env.location): BOOT_ORDER=\(order) with no tries left on any slot: RAUC's example boot script resets the counters and boots the first slot, \(first)"
        found.warnings.append(facts)
        return (p, facts)
    }

    /// The first root candidate's `/etc/rauc/system.conf` with the paths of that root.
    static func systemConfig(_ context: SlotContext, _ found: inout SlotFindings) -> (RAUCSystemConfig, String, RootPaths)? {
        for c in context.candidates {
            guard let fs = context.disk.openedFileSystem(c.index) else { continue }
            let paths = RootPaths(disk: context.disk, root: c.index, fs: fs)
            guard let file = paths.read("/etc/rauc/system.conf", warnings: &found.warnings) else { continue }
            return (RAUCSystemConfig.parse(file.bytes), file.location, paths)
        }
        return nil
    }

    /// `rauc.slot=X` on a kernel command line of a boot partition (cmdline.txt, extlinux.conf,
    /// grub.cfg) when every such line names the same slot.
    static func commandLineSlot(_ context: SlotContext, slot: (String) -> Int?) -> (Int, String)? {
        let lines = context.state.cmdlines + context.state.menuCommandLines
        let named = lines.compactMap { line in KernelCommandLine.value("rauc.slot", in: line.text).map { ($0, line.location) } }
        guard let first = named.first, named.allSatisfy({ $0.0 == first.0 }), let p = slot(first.0) else { return nil }
        return (p, "\(first.1): rauc.slot=\(first.0)")
    }

    /// The installed bundles from the status file system.conf names, for the reason.
    static func status(_ config: RAUCSystemConfig, paths: RootPaths, _ found: inout SlotFindings) -> String? {
        let path: String
        if let file = config.statusFile, file != "per-slot" {
            path = file
        } else if let dir = config.dataDirectory {
            path = Planner.normalise(dir + "/central.raucs")
        } else {
            return "RAUC status: \(config.statusFile == "per-slot" ? "per-slot status files" : "no status file configured") (not read)"
        }
        guard let file = paths.read(path, warnings: &found.warnings) else { return "RAUC status \(path): not found" }
        let slots = RAUCStatus.summary(file.bytes, file: path)
        return "RAUC status \(file.location): " + (slots.isEmpty ? "no slot sections" : slots.joined(separator: "; "))
    }
}
