print("fwassemble")
