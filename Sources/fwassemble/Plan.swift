import ArgumentParser
import FirmwareAssembler
import Foundation

extension Fwassemble {
    struct PlanCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan",
            abstract: "Show which root boots and what the booted device mounts where.",
            discussion: """
                The root slot comes from the bootloader state on the disk (GRUB grubenv, U-Boot \
                environments, cmdline.txt, uEnv files), the Discoverable Partitions Specification, \
                or the only Linux root; then /etc/fstab and the enabled systemd mount units, in \
                the order the kernel stacks them. Skipped mounts are listed with the reason.
                """)

        @OptionGroup var booted: BootedDisk

        @Flag(help: "Print the plan as JSON.")
        var json = false

        func run() throws {
            let plan: Plan
            do {
                plan = try booted.open().plan(options: booted.rootOption.planOptions)
            } catch {
                Fwassemble.fail(error)
            }
            if json {
                print(try plan.json())
                return
            }
            print("root: partition \(plan.root.partition) (\(plan.root.filesystem)), \(plan.root.reason)")
            print("profile: \(plan.profile)")
            print("mounts, in the order applied:")
            for m in plan.mounts {
                var what: String
                switch m.kind {
                case .partition:
                    what = "partition \(m.partition.map(String.init) ?? "?")\(m.offset.map { " at byte \($0)" } ?? "") (\(m.fstype ?? "auto"))"
                case .bind: what = "bind \(m.what ?? "?")"
                case .overlay: what = "overlay lower=\((m.lower ?? []).joined(separator: ":")) upper=\(m.upper ?? "-")"
                }
                if !m.options.isEmpty { what += " [\(m.options)]" }
                print("  \(m.where.padding(toLength: max(m.where.count, 32), withPad: " ", startingAt: 0)) \(what)  <- \(m.declaredBy)")
            }
            if !plan.skipped.isEmpty {
                print("skipped:")
                for s in plan.skipped {
                    print("  \(s.where): \(s.reason)" + (s.declaredBy.map { " (\($0))" } ?? ""))
                }
            }
            for w in plan.warnings { Fwassemble.writeError("warning: \(w)\n") }
        }
    }
}
