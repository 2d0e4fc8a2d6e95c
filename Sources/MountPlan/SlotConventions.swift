import DiskImage
import FileSystems
import PartitionTable

/// A slot convention's answer: the root partition and the facts that chose it.
struct SlotDecision {
    /// "RAUC", "HAOS", "SWUpdate", ... for the disagreement warning.
    var convention: String
    var partition: Int
    var reason: String
}

/// What a convention noticed on the way (kept only for the conventions consulted before the
/// choice was made: a later one's problems do not concern the booted device).
struct SlotFindings {
    var warnings: [String] = []
    var evidence: [String] = []
}

/// What every convention reads: the disk, its root candidates and the boot state on it.
struct SlotContext {
    let disk: any PlanningDisk
    let candidates: [PlanPartition]
    let state: BootState

    /// The conventions in the order they are trusted: the first with an answer chooses, and a
    /// later one pointing elsewhere is a warning.
    static var conventions: [(SlotContext, inout SlotFindings) -> SlotDecision?] {
        [RAUCConvention.decide, { $0.haos(&$1) }, { $0.partitionVariable(&$1) }, { $0.swupdate(&$1) },
         { $0.gptAttributes(&$1) }, RaspberryPiTryboot.decide, { $0.commandLine(&$1) }]
    }

    func isCandidate(_ index: Int) -> Bool { candidates.contains { $0.index == index } }

    /// A Home Assistant OS disk: partitions named `hassos-*`.
    var isHAOS: Bool { disk.partitions.contains { ($0.name ?? $0.label)?.hasPrefix("hassos-") == true } }

    func name(_ index: Int) -> String { disk.partitions.first { $0.index == index }?.displayName ?? "partition \(index)" }

    /// A device spec (`/dev/disk/by-partlabel/rootfs-a`, `PARTUUID=...`, `/dev/mmcblk0p3`) as a
    /// partition of this disk, nil when it names none.
    func partition(_ device: String) -> Int? {
        let resolver = DeviceResolver(partitions: disk.partitions, rootPartition: nil)
        guard case .partition(let p, _) = resolver.resolve(DeviceSpec(parsing: device)) else { return nil }
        return p
    }

    // MARK: HAOS

    /// HAOS: GRUB's `ORDER` with `X_OK=1` and `X_TRY<3` (its grub.cfg counts three tries), else
    /// U-Boot's `BOOT_ORDER` with `BOOT_X_LEFT>0`; slots by the GPT names `hassos-system0/1`, else
    /// by position. A root with a RAUC system.conf leaves the same state to RAUCConvention, which
    /// knows the slots by their devices.
    func haos(_ found: inout SlotFindings) -> SlotDecision? {
        var ignored = SlotFindings()
        if RAUCConvention.systemConfig(self, &ignored) != nil { return nil }
        let label = isHAOS ? "HAOS" : "the A/B slot order (RAUC-style state without a system.conf)"
        if let grub = state.grub, grub.variables["ORDER"] != nil || grub.variables["A_OK"] != nil,
           let p = grubOrder(grub, maximumTries: 2, slot: haosSlot, &found) {
            return SlotDecision(convention: label, partition: p.0, reason: p.1)
        }
        if let env = state.uboot, env.variables["BOOT_ORDER"] != nil, let p = ubootOrder(env, slot: haosSlot, &found) {
            return SlotDecision(convention: label, partition: p.0, reason: p.1)
        }
        return nil
    }

    /// The first slot of grubenv's `ORDER` (default "A B") with `X_OK=1` and `X_TRY` at most
    /// `maximumTries` whose partition holds a root. The reason lists the slots passed over.
    func grubOrder(_ env: BootState.Environment, maximumTries: Int, slot: (String) -> Int?, _ found: inout SlotFindings) -> (Int, String)? {
        let vars = env.variables
        let order = (vars["ORDER"] ?? "A B").split(separator: " ").map(String.init)
        return firstSlot(order, in: env, header: "ORDER=\(order.joined(separator: " "))", slot: slot, &found) { name in
            let tries = Int(vars["\(name)_TRY"] ?? "0") ?? 0
            let facts = "\(name)_OK=\(vars["\(name)_OK"] ?? "unset"), \(name)_TRY=\(tries)"
            return (vars["\(name)_OK"] == "1" && tries <= maximumTries, facts, "not bootable")
        }
    }

    /// The first slot of `BOOT_ORDER` with `BOOT_X_LEFT>0` whose partition holds a root.
    func ubootOrder(_ env: BootState.Environment, slot: (String) -> Int?, _ found: inout SlotFindings) -> (Int, String)? {
        guard let orderText = env.variables["BOOT_ORDER"] else { return nil }
        let order = orderText.split(separator: " ").map(String.init)
        return firstSlot(order, in: env, header: "BOOT_ORDER=\(orderText)", slot: slot, &found) { name in
            let left = Int(env.variables["BOOT_\(name)_LEFT"] ?? "0") ?? 0
            return (left > 0, "BOOT_\(name)_LEFT=\(left)", "no tries left")
        }
    }

    /// The first slot of `order` that `check` finds bootable and `slot` maps to a root; the
    /// facts of every slot passed over (and why) stay in the reason, a slot without a root is
    /// also a warning.
    private func firstSlot(_ order: [String], in env: BootState.Environment, header: String, slot: (String) -> Int?,
                           _ found: inout SlotFindings, check: (String) -> (bootable: Bool, facts: String, notBootable: String)) -> (Int, String)? {
        var reason = "\(env.location): \(header)"
        for name in order.prefix(16) {
            let (bootable, facts, why) = check(name)
            guard bootable else {
                reason += ", \(facts) (\(why))"
                found.evidence.append("\(env.location): \(header), \(facts) (\(why))")
                continue
            }
            if let p = slot(name) { return (p, reason + ", \(facts)") }
            found.warnings.append("\(env.location): \(header), \(facts): slot \(name) has no valid root filesystem; trying the next slot")
            reason += ", \(facts) (slot \(name) holds no root)"
        }
        return nil
    }

    /// HAOS slot letter -> partition: by GPT name `hassos-system0/1`, else the first/second root
    /// slot candidate in partition order (MBR boards have no names).
    func haosSlot(_ slot: String) -> Int? {
        let number: Int
        switch slot.uppercased() {
        case "A": number = 0
        case "B": number = 1
        default: return nil
        }
        if let named = disk.partitions.first(where: { $0.name == "hassos-system\(number)" }) {
            return isCandidate(named.index) ? named.index : nil
        }
        // Without names: the slots are the partitions of the same size holding (or meant to hold)
        // a root; slot A is the first of them.
        let slots = slotPartitions()
        guard number < slots.count else { return nil }
        return isCandidate(slots[number]) ? slots[number] : nil
    }

    /// A/B slot partitions when the table has no names: the first candidate and the partitions of
    /// the same size after it (an empty slot B still takes its place).
    func slotPartitions() -> [Int] {
        guard let first = candidates.first else { return [] }
        return disk.partitions.filter { $0.size == first.size && $0.index >= first.index && ($0.fsType == nil || $0.fsType == first.fsType || candidates.contains($0)) }
            .filter { p in !(p.fsType == nil && p.size == 0) }
            .map(\.index)
    }

    // MARK: Mender, balenaOS

    /// Mender's `mender_boot_part` and balena's `resin_root_part` in any environment.
    func partitionVariable(_ found: inout SlotFindings) -> SlotDecision? {
        let envs = [state.uboot, state.configuredUBoot, state.grub, state.textEnv].compactMap { $0 }
        for env in envs {
            for key in ["mender_boot_part", "resin_root_part"] {
                guard let value = env.variables[key] else { continue }
                let facts = "\(env.location): \(key)=\(value)"
                if let p = slotByValue(value) {
                    guard key == "mender_boot_part", env.variables["upgrade_available"] == "1" else {
                        return SlotDecision(convention: key.hasPrefix("mender") ? "Mender" : "balenaOS", partition: p, reason: facts)
                    }
                    let (chosen, reason) = bootCountRollback(env.variables, key: key, slot: p, facts: facts, &found)
                    return SlotDecision(convention: "Mender", partition: chosen, reason: reason)
                }
                found.warnings.append("\(facts) does not name a partition holding a Linux root; ignored")
            }
        }
        return nil
    }

    /// `mender_boot_part=3` / `resin_root_part=2` (hex for balena's U-Boot) / `A|B`.
    func slotByValue(_ value: String) -> Int? {
        if value == "A" || value == "B" {
            let i = value == "A" ? 0 : 1
            return i < candidates.count ? candidates[i].index : nil
        }
        guard let n = Int(value) ?? Int(value, radix: 16), isCandidate(n) else { return nil }
        return n
    }

    // MARK: SWUpdate

    /// SWUpdate's double-copy U-Boot convention: the root partition number in `rootpart` or
    /// `mmcpart`, subject to U-Boot's bootcount rollback (`bootCountRollback`).
    func swupdate(_ found: inout SlotFindings) -> SlotDecision? {
        for env in [state.configuredUBoot, state.uboot].compactMap({ $0 }) {
            guard let key = ["rootpart", "mmcpart"].first(where: { env.variables[$0] != nil }), let value = env.variables[key] else { continue }
            let facts = "SWUpdate (U-Boot double copy) \(env.location): \(key)=\(value)"
            guard let slot = slotByValue(value) else {
                found.warnings.append("\(facts) does not name a partition holding a Linux root; ignored")
                continue
            }
            let (p, reason) = bootCountRollback(env.variables, key: key, slot: slot, facts: facts, &found)
            return SlotDecision(convention: "SWUpdate", partition: p, reason: reason)
        }
        return nil
    }

    /// U-Boot's boot counter (CONFIG_BOOTCOUNT_ENV): during a trial (`upgrade_available=1`) each
    /// boot increments `bootcount` and, once it passes `bootlimit`, runs `altbootcmd`, which
    /// SWUpdate's and Mender's integrations use to switch to the other copy. A stored
    /// `bootcount>=bootlimit>0` means the next boot rolls back: to the partition an unconditional
    /// `setenv KEY N` in `altbootcmd` names, else to the other of the two root copies.
    func bootCountRollback(_ vars: [String: String], key: String, slot: Int, facts: String, _ found: inout SlotFindings) -> (Int, String) {
        var facts = facts
        for k in ["ustate", "upgrade_available", "bootcount", "bootlimit"] where vars[k] != nil { facts += ", \(k)=\(vars[k] ?? "")" }
        let count = Int(vars["bootcount"] ?? "0") ?? 0
        let limit = Int(vars["bootlimit"] ?? "0") ?? 0
        guard vars["upgrade_available"] == "1", limit > 0, count >= limit else { return (slot, facts) }
        // The next boot counts bootcount+1 > bootlimit: U-Boot runs altbootcmd.
        facts += ": the trial boot failed (bootcount reached bootlimit), so U-Boot runs altbootcmd"
        if let target = altbootTarget(vars["altbootcmd"] ?? "", key: key), isCandidate(target) {
            return (target, facts + ", which sets \(key)=\(target)")
        }
        let pair = slotPartitions()
        guard pair.count == 2, let other = pair.first(where: { $0 != slot }), isCandidate(other) else {
            found.warnings.append("\(facts); the other copy is not known (no A/B pair of root partitions); \(name(slot)) kept")
            return (slot, facts + "; the other copy is not known")
        }
        return (other, facts + " (switching to the other copy, \(name(other)), as the double-copy integrations do)")
    }

    /// The partition an unconditional `setenv rootpart N` in `altbootcmd` sets; nil when the
    /// command has conditions (an `if`) or sets no such variable.
    func altbootTarget(_ command: String, key: String) -> Int? {
        guard !command.contains("if ") else { return nil }
        for part in command.split(separator: ";") {
            let words = part.split(separator: " ")
            if words.count == 3, words[0] == "setenv", words[1] == key { return Int(words[2]) ?? Int(words[2], radix: 16) }
        }
        return nil
    }

    // MARK: GPT attribute bits

    /// ChromeOS / Flatcar: among the partitions carrying GPT slot bits, the highest priority with
    /// `successful=1` or `tries>0`, ties to the first in table order (the rule of GRUB's
    /// `gptprio.next`, which Flatcar boots with, and of vboot's kernel selection that `cgpt` sets
    /// up). A ChromeOS kernel slot `KERN-X` boots the root `ROOT-X`; Flatcar's `USR-X` slots are
    /// its /usr, not a root (the root partition is shared: left to the other rules). A chosen slot
    /// without a root is passed over with a warning.
    func gptAttributes(_ found: inout SlotFindings) -> SlotDecision? {
        let slots = disk.partitions.compactMap { p in p.slot.map { (partition: p, bits: $0) } }
        guard !slots.isEmpty else { return nil }
        if slots.allSatisfy({ FlatcarProfile.isUsrSlot($0.partition) }) {
            found.evidence.append("GPT attribute bits on Flatcar's /usr slots only; the root is not chosen by them")
            return nil
        }
        var facts = "GPT attribute bits (highest priority with successful=1 or tries>0, as GRUB's gptprio.next and ChromeOS vboot choose): "
            + slots.map { "\($0.partition.displayName) \($0.bits)" }.joined(separator: "; ")
        let bootable = GPTSlotAttributes.bootOrder(slots.map { ($0.partition, $0.bits) }).map { (partition: $0.0, bits: $0.1) }
        for slot in bootable {
            let trial = slot.bits.successful ? "" : " (a trial boot: gptprio.next decrements its tries)"
            if isCandidate(slot.partition.index) {
                return SlotDecision(convention: "GPT attribute bits", partition: slot.partition.index, reason: facts + trial)
            }
            if let name = slot.partition.name, name.hasPrefix("KERN-"),
               let root = disk.partitions.first(where: { $0.name == "ROOT-" + name.dropFirst(5) }), isCandidate(root.index) {
                return SlotDecision(convention: "GPT attribute bits", partition: root.index,
                                    reason: facts + trial + "; kernel slot \(name) boots \(root.displayName) (ChromeOS KERN-X/ROOT-X)")
            }
            found.warnings.append("\(facts): \(slot.partition.displayName) would boot but holds no Linux root; trying the next slot")
            facts += "; \(slot.partition.displayName) holds no root"
        }
        if bootable.isEmpty {
            found.warnings.append("\(facts): no slot is bootable (each has priority 0, or neither successful nor tries left)")
        }
        return nil
    }

    // MARK: Kernel command line

    /// `cmdline.txt` on a boot partition: `rauc.slot=` (HAOS on the Raspberry Pi 5) or `root=`.
    /// With an `autoboot.txt` the command line is the chosen boot partition's (RaspberryPiTryboot).
    func commandLine(_ found: inout SlotFindings) -> SlotDecision? {
        guard state.autoboot == nil, let cmd = state.cmdlines.first else { return nil }
        if let slot = KernelCommandLine.value("rauc.slot", in: cmd.text), let p = haosSlot(slot) {
            return SlotDecision(convention: "cmdline.txt", partition: p, reason: "cmdline.txt rauc.slot=\(slot)")
        }
        guard let root = KernelCommandLine.value("root", in: cmd.text) else { return nil }
        if let p = partition(root), isCandidate(p) {
            return SlotDecision(convention: "cmdline.txt", partition: p, reason: "cmdline.txt root=\(root)")
        }
        found.warnings.append("cmdline.txt root=\(root) does not name a partition holding a Linux root; ignored")
        return nil
    }
}
