import Assembly
import DiskImage
import FileSystems
import PartitionTable

/// Flatcar Container Linux (field guide §9): one shared ROOT partition and two /usr slots, USR-A
/// and USR-B (GPT type "CoreOS usr"), chosen at boot by GRUB's `gptprio.next` from the GPT
/// attribute bits (priority, tries, successful) and mounted read-only at /usr (`mount.usr=`).
enum FlatcarProfile {
    /// The "CoreOS usr" partition type GUID.
    static let usrType = "5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6"

    static func isUsrSlot(_ p: PlanPartition) -> Bool {
        p.typeID?.lowercased() == usrType || p.name == "USR-A" || p.name == "USR-B"
    }

    /// A Flatcar disk: two /usr slots.
    static func detect(_ disk: any PlanningDisk) -> Bool {
        disk.partitions.filter(isUsrSlot).count >= 2
    }

    static func bootedRoot(disk: any PlanningDisk, root: RootChoice, physical: any FileSystemReader) -> (root: BootedRoot?, warnings: [String]) {
        let slots = disk.partitions.filter(isUsrSlot)
        let facts = slots.map { "\($0.displayName) \($0.slot?.description ?? "no slot bits")" }.joined(separator: "; ")
        let order = GPTSlotAttributes.bootOrder(slots.compactMap { p in p.slot.map { (p, $0) } })
        guard let (usr, bits) = order.first else {
            return (nil, ["Flatcar: no /usr slot is bootable by its GPT attribute bits (\(facts)); /usr not mounted"])
        }
        let trial = bits.successful ? "" : " (a trial boot: gptprio.next decrements its tries)"
        let reason = "Flatcar: /usr slot chosen by GPT attribute bits (highest priority with successful=1 or tries>0, GRUB's gptprio.next): \(facts)\(trial)"
        guard let usrFS = disk.openedFileSystem(usr.index) else {
            let what = disk.unreadableReason(partition: usr.index) ?? "holds \(usr.fsType ?? "no filesystem libblkid recognises")"
            return (nil, ["\(reason): \(usr.displayName) \(what), which fwassemble does not read; /usr not mounted"])
        }
        let mounts = [
            PlannedMount(where: "/", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "", source: .other(root.reason)),
            PlannedMount(where: "/usr", kind: .partition, partition: usr.index, fstype: usr.fsType, options: "ro", source: .other(reason)),
        ]
        // The booted system's configuration: units of /usr/lib/systemd/system live on the slot.
        let view = NamespaceFileSystem(name: "\(physical.sourceName) with /usr")
        do {
            try view.mount(physical, at: .root, origin: physical.sourceName)
            try view.mount(usrFS, at: NamespacePath("/usr"), origin: usrFS.sourceName)
        } catch {
            return (nil, ["\(reason): \(usr.displayName) cannot be read (\(FWError(error).message)); /usr not mounted"])
        }
        return (BootedRoot(mounts: mounts, config: view), [])
    }
}
