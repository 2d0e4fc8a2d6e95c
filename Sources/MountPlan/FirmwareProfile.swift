import FileSystems

/// Firmware families detected from the disk's contents. The generic path (fstab + units) needs
/// no profile; a profile names the family in the report and flags boot-time mounts that are
/// neither fstab nor mount units, which fwassemble does not model yet.
struct FirmwareProfile {
    var name: String
    var warnings: [String] = []

    static func detect(disk: any PlanningDisk, root: any FileSystemReader) -> FirmwareProfile {
        let names = disk.partitions.compactMap { $0.name ?? $0.label }
        func exists(_ path: String) -> Bool { ((try? root.lookup(path)) ?? nil) != nil }
        if names.contains(where: { $0.hasPrefix("hassos-") }) { return FirmwareProfile(name: "haos") }
        if names.contains(where: { $0.hasPrefix("resin-") || $0.hasPrefix("balena-") }) || exists("/balena") {
            return FirmwareProfile(name: "balenaos", warnings: [
                "balenaOS detected: its hostapp root (the OS container inside /balena), resin-*.service partition mounts and bind-*.service state binds are not modelled yet; the plan covers only fstab and mount units"])
        }
        if exists("/ostree") {
            return FirmwareProfile(name: "ostree", warnings: [
                "OSTree detected: the booted deployment and its /var bind are not modelled yet; the plan covers only the physical root's fstab and mount units"])
        }
        if exists("/etc/openwrt_release") {
            return FirmwareProfile(name: "openwrt", warnings: [
                "OpenWrt detected: the rootfs_data overlay and UCI /etc/config/fstab are not modelled yet"])
        }
        if disk.partitions.contains(where: { $0.label == "bootfs" || $0.label == "boot" }), exists("/boot/firmware") || exists("/boot") {
            if let inode = try? root.lookup("/etc/os-release"), let bytes = try? root.readSmallFile(inode, limit: 65536),
               String(decoding: bytes, as: UTF8.self).contains("raspberrypi") || String(decoding: bytes, as: UTF8.self).contains("Raspbian") {
                return FirmwareProfile(name: "raspberrypi-os")
            }
        }
        if exists("/etc/mender") || exists("/data/mender") { return FirmwareProfile(name: "mender") }
        return FirmwareProfile(name: "generic")
    }
}
