_fail2ban__healthd() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="fail2ban__healthd"
                ;;
            fail2ban__healthd,abort)
                cmd="fail2ban__healthd__subcmd__abort"
                ;;
            fail2ban__healthd,activate)
                cmd="fail2ban__healthd__subcmd__activate"
                ;;
            fail2ban__healthd,check)
                cmd="fail2ban__healthd__subcmd__check"
                ;;
            fail2ban__healthd,confirm)
                cmd="fail2ban__healthd__subcmd__confirm"
                ;;
            fail2ban__healthd,dismiss)
                cmd="fail2ban__healthd__subcmd__dismiss"
                ;;
            fail2ban__healthd,help)
                cmd="fail2ban__healthd__subcmd__help"
                ;;
            fail2ban__healthd,probe)
                cmd="fail2ban__healthd__subcmd__probe"
                ;;
            fail2ban__healthd,rollback)
                cmd="fail2ban__healthd__subcmd__rollback"
                ;;
            fail2ban__healthd,run)
                cmd="fail2ban__healthd__subcmd__run"
                ;;
            fail2ban__healthd,status)
                cmd="fail2ban__healthd__subcmd__status"
                ;;
            fail2ban__healthd,try)
                cmd="fail2ban__healthd__subcmd__try"
                ;;
            fail2ban__healthd,watch)
                cmd="fail2ban__healthd__subcmd__watch"
                ;;
            fail2ban__healthd__subcmd__help,abort)
                cmd="fail2ban__healthd__subcmd__help__subcmd__abort"
                ;;
            fail2ban__healthd__subcmd__help,activate)
                cmd="fail2ban__healthd__subcmd__help__subcmd__activate"
                ;;
            fail2ban__healthd__subcmd__help,check)
                cmd="fail2ban__healthd__subcmd__help__subcmd__check"
                ;;
            fail2ban__healthd__subcmd__help,confirm)
                cmd="fail2ban__healthd__subcmd__help__subcmd__confirm"
                ;;
            fail2ban__healthd__subcmd__help,dismiss)
                cmd="fail2ban__healthd__subcmd__help__subcmd__dismiss"
                ;;
            fail2ban__healthd__subcmd__help,help)
                cmd="fail2ban__healthd__subcmd__help__subcmd__help"
                ;;
            fail2ban__healthd__subcmd__help,probe)
                cmd="fail2ban__healthd__subcmd__help__subcmd__probe"
                ;;
            fail2ban__healthd__subcmd__help,rollback)
                cmd="fail2ban__healthd__subcmd__help__subcmd__rollback"
                ;;
            fail2ban__healthd__subcmd__help,run)
                cmd="fail2ban__healthd__subcmd__help__subcmd__run"
                ;;
            fail2ban__healthd__subcmd__help,status)
                cmd="fail2ban__healthd__subcmd__help__subcmd__status"
                ;;
            fail2ban__healthd__subcmd__help,try)
                cmd="fail2ban__healthd__subcmd__help__subcmd__try"
                ;;
            fail2ban__healthd__subcmd__help,watch)
                cmd="fail2ban__healthd__subcmd__help__subcmd__watch"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        fail2ban__healthd)
            opts="-h -V --help --version probe run status watch activate dismiss rollback check try confirm abort help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__abort)
            opts="-h -V --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__activate)
            opts="-h -V --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__check)
            opts="-h -V --json --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__confirm)
            opts="-h -V --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__dismiss)
            opts="-h -V --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help)
            opts="probe run status watch activate dismiss rollback check try confirm abort help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__abort)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__activate)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__check)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__confirm)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__dismiss)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__probe)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__rollback)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__run)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__status)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__try)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__help__subcmd__watch)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__probe)
            opts="-h -V --socket --timeout --json --unit --connect --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --socket)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__rollback)
            opts="-h -V --json --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__run)
            opts="-h -V --config --socket --probe-timeout --fail2ban-unit --instant-detection --probe-interval --crash-window --jail-start-grace --watch-interval --restart-grace --manage-group --rollback-group --rollback-dropin --fail2ban-reload-command --fail2ban-start-command --rollback-timeout --fail2ban-client-command --trial-checks --state-file --metrics-file --bus --bus-address --log --log-level --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --socket)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --probe-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fail2ban-unit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --instant-detection)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --probe-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --crash-window)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --jail-start-grace)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --watch-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --restart-grace)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --manage-group)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --rollback-group)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --rollback-dropin)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fail2ban-reload-command)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fail2ban-start-command)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --rollback-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fail2ban-client-command)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --trial-checks)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --state-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --metrics-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bus)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log-level)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__status)
            opts="-h -V --json --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__try)
            opts="-h -V --timeout --json --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        fail2ban__subcmd__healthd__subcmd__watch)
            opts="-h -V --json --bus --bus-address --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --bus)
                    COMPREPLY=($(compgen -W "system session" -- "${cur}"))
                    return 0
                    ;;
                --bus-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _fail2ban__healthd -o nosort -o bashdefault -o default fail2ban-healthd
else
    complete -F _fail2ban__healthd -o bashdefault -o default fail2ban-healthd
fi
